/**
 * Waiting for a service to be ready: the runner tries the service's probe through its driver
 * (a TCP connection, an HTTP GET over such a connection, or a command run inside the service)
 * every `interval` until it passes, the service exits, `timeout` expires or the run is
 * cancelled. Each attempt gets at most the time left (and at most 5 s), so a probe that hangs
 * (a server that accepts but never answers) cannot outlast the timeout.
 *
 * @module
 */

import type { ExitStatus, ProbeConnection, ServiceHandle } from "../drivers/contract.ts";
import type { ReadyProbe } from "../dsl/types.ts";
import { sleep } from "../drivers/timers.ts";

/** The longest single attempt. */
const MAX_ATTEMPT_MS = 5_000;

/** The readiness settings of one service. */
export interface ReadinessOptions {
  /** The probe to pass. */
  readonly probe: ReadyProbe;
  /** How long to wait in all, in milliseconds. */
  readonly timeoutMs: number;
  /** The time between attempts, in milliseconds. */
  readonly intervalMs: number;
  /** Resolves when the service's process ends. */
  readonly exited: Promise<ExitStatus>;
  /** Aborts when the run is cancelled. */
  readonly signal: AbortSignal;
}

/** Why a service did not become ready (the message names the probe). */
export class NotReadyError extends Error {
  /** `exited`, `timeout` or `cancelled`. */
  readonly reason: "exited" | "timeout" | "cancelled";
  /** Creates the error. */
  constructor(reason: "exited" | "timeout" | "cancelled", message: string) {
    super(message);
    this.name = "NotReadyError";
    this.reason = reason;
  }
}

/** The probe as the author wrote it, for messages: `tcp 5432`, `http http://...`, `exec pg_isready`. */
export function describeProbe(probe: ReadyProbe): string {
  if ("tcp" in probe) return `tcp port ${probe.tcp}`;
  if ("http" in probe) return `http ${probe.http}`;
  return `exec ${probe.exec.join(" ")}`;
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0].slice(0, 300);
}

async function readStatusLine(connection: ProbeConnection, signal: AbortSignal): Promise<string> {
  const reader = connection.readable.getReader();
  const onAbort = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const decoder = new TextDecoder();
    let text = "";
    while (!text.includes("\r\n") && text.length < 4096) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    signal.throwIfAborted();
    if (text === "") throw new Error("the connection closed without an answer");
    return text.split("\r\n")[0];
  } finally {
    signal.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
}

/** One HTTP/1.0 GET over a probe connection; resolves with the status code. */
async function httpGet(
  connection: ProbeConnection,
  url: URL,
  signal: AbortSignal,
): Promise<number> {
  const request = `GET ${url.pathname}${url.search} HTTP/1.0\r\nHost: ${url.host}\r\n` +
    "User-Agent: pocketci-readiness\r\nConnection: close\r\n\r\n";
  const writer = connection.writable.getWriter();
  try {
    await writer.write(new TextEncoder().encode(request));
  } finally {
    writer.releaseLock();
  }
  const line = await readStatusLine(connection, signal);
  const match = /^HTTP\/\d(?:\.\d)? (\d{3})/.exec(line);
  if (match === null) throw new Error(`not an HTTP answer: ${JSON.stringify(line.slice(0, 80))}`);
  return Number(match[1]);
}

/** Gives a settled `exited` promise's callbacks a turn (a pending one is not waited for). */
function exitSeen(exited: Promise<unknown>): Promise<unknown> {
  return Promise.race([exited.catch(() => {}), Promise.resolve()]);
}

/** One attempt; resolves when the probe passed, rejects with why it did not. */
export async function probeOnce(
  service: Pick<ServiceHandle, "dial" | "exec">,
  probe: ReadyProbe,
  signal: AbortSignal,
): Promise<void> {
  if ("exec" in probe) {
    const status = await service.exec(probe.exec, signal);
    if (status.code !== 0) throw new Error(`exit code ${status.code}`);
    return;
  }
  const url = "http" in probe ? new URL(probe.http) : undefined;
  const port = "tcp" in probe ? probe.tcp : Number(url?.port || 80);
  const connection = await service.dial(port, signal);
  try {
    if (url === undefined) return;
    const code = await httpGet(connection, url, signal);
    if (code < 200 || code > 399) throw new Error(`status ${code}`);
  } finally {
    connection.close();
  }
}

/**
 * Tries the probe until it passes. Rejects with {@link NotReadyError} when the service exits
 * first, the timeout expires (naming the last failure) or `signal` aborts.
 */
export async function waitReady(
  service: Pick<ServiceHandle, "dial" | "exec">,
  options: ReadinessOptions,
): Promise<void> {
  const what = describeProbe(options.probe);
  const deadline = performance.now() + options.timeoutMs;
  let exit: ExitStatus | undefined;
  options.exited.then((status) => exit = status, () => exit = { code: -1 });
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal.addEventListener("abort", onAbort, { once: true });
  options.exited.then(() => stop.abort(), () => stop.abort());
  let last = "no attempt finished";
  try {
    for (;;) {
      if (options.signal.aborted) {
        throw new NotReadyError("cancelled", `the run was cancelled while waiting for ${what}`);
      }
      if (exit !== undefined) {
        throw new NotReadyError(
          "exited",
          `it exited with code ${exit.code} before ${what} passed (last attempt: ${last})`,
        );
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new NotReadyError(
          "timeout",
          `${what} did not pass within ${options.timeoutMs} ms (last attempt: ${last})`,
        );
      }
      const attempt = AbortSignal.any([
        stop.signal,
        AbortSignal.timeout(Math.max(1, Math.min(left, MAX_ATTEMPT_MS))),
      ]);
      try {
        await probeOnce(service, options.probe, attempt);
        if (!stop.signal.aborted) return;
      } catch (error) {
        last = attempt.aborted && !stop.signal.aborted ? "no answer in time" : firstLine(error);
      }
      const pause = Math.min(options.intervalMs, deadline - performance.now());
      if (pause > 0) await sleep(pause, stop.signal);
      // The exit's own callback runs before the next check.
      await exitSeen(options.exited);
    }
  } finally {
    options.signal.removeEventListener("abort", onAbort);
  }
}
