/**
 * A running task container: output demultiplexed live from an attach made before start (or
 * replayed from the logs when re-attaching), the exit status from the engine's wait, OOM kills
 * detected, and stop as SIGTERM then SIGKILL after the grace period.
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import type Docker from "dockerode";
import type { Duplex } from "node:stream";
import type { ExitStatus, OutputSink, TaskHandle } from "../contract.ts";
import { concatBytes } from "../bytes.ts";
import { Demuxer } from "./demux.ts";
import { type LongTimeout, longTimeout, sleep } from "../timers.ts";

/** Resolves after `ms` (any length), or as soon as `until` settles; never leaves a timer behind. */
export function delay<T>(ms: number, until: Promise<T>): Promise<"timeout" | "settled"> {
  let timer: LongTimeout | undefined;
  const timeout = new Promise<"timeout">((resolve) =>
    timer = longTimeout(() => resolve("timeout"), ms)
  );
  const settled = until.then(() => "settled" as const, () => "settled" as const);
  return Promise.race([timeout, settled]).finally(() => timer?.clear());
}

/** The exit status for an exit code; codes 129–159 mean a signal, as in shells. */
export function exitStatus(code: number, oomKilled: boolean): ExitStatus {
  const signal = oomKilled ? 9 : code > 128 && code < 160 ? code - 128 : undefined;
  return {
    code,
    ...(signal !== undefined ? { signal } : {}),
    ...(oomKilled ? { oomKilled: true } : {}),
  };
}

function statusCode(error: unknown): number | undefined {
  return (error as { statusCode?: number }).statusCode;
}

/** Collects a stream's data into the demuxer; resolves when the stream ends or breaks. */
export function pump(stream: NodeJS.ReadableStream | Duplex, output: OutputSink): Promise<void> {
  const demuxer = new Demuxer(output);
  return new Promise<void>((resolve) => {
    stream.on("data", (chunk: Uint8Array) => demuxer.push(chunk));
    stream.once("end", () => resolve());
    stream.once("close", () => resolve());
    stream.once("error", () => resolve());
  });
}

/** A wait for a container's next exit, made before it starts. */
export interface NextExit {
  /** Resolves once the engine has registered the wait (its response headers arrived). */
  readonly registered: Promise<void>;
  /** The exit code. */
  readonly exited: Promise<number>;
}

/**
 * Asks the engine to wait for the container's next exit before it is started (as `docker run`
 * does), so the wait is in place when a short task exits instead of being a request sent after
 * the start returns. The engine answers with headers as soon as the wait is registered and with
 * the status when the container exits.
 */
export function waitForNextExit(container: Docker.Container): NextExit {
  const modem = (container as unknown as { modem: DockerModem }).modem;
  const response = new Promise<NodeJS.ReadableStream>((resolve, reject) =>
    modem.dial({
      path: `/containers/${container.id}/wait?`,
      method: "POST",
      isStream: true,
      statusCodes: {
        200: true,
        400: "bad parameter",
        404: "no such container",
        500: "server error",
      },
      options: { condition: "next-exit" },
    }, (error, stream) => error ? reject(error) : resolve(stream as NodeJS.ReadableStream))
  );
  const exited = response.then((stream) =>
    new Promise<number>((resolve, reject) => {
      const chunks: Uint8Array[] = [];
      stream.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      stream.once("error", reject);
      stream.once("end", () => {
        try {
          const body = JSON.parse(new TextDecoder().decode(concatBytes(chunks))) as {
            StatusCode?: number;
          };
          if (typeof body.StatusCode !== "number") throw new Error("the wait gave no exit code");
          resolve(body.StatusCode);
        } catch (error) {
          reject(error);
        }
      });
    })
  );
  exited.catch(() => {});
  return { registered: response.then(() => {}), exited };
}

/** The part of docker-modem used to send a request dockerode has no method for. */
interface DockerModem {
  dial(
    options: Record<string, unknown>,
    callback: (error: Error | null, result: unknown) => void,
  ): void;
}

/** Set once the task's stop() was called: its SIGKILL death is then no OOM kill to wait for. */
export interface StopMark {
  /** Whether stop() was called. */
  requested: boolean;
}

/** How long a memory-limited container's SIGKILL death waits for the engine's OOM flag. */
const OOM_SETTLE_MS = 3_000;
const OOM_POLL_MS = 100;

/**
 * Waits for the container to stop and reads its exit status (inspecting for OOM when it failed).
 * `exited` is a wait registered before the start; without it (or when it broke) the engine is
 * asked now. `stops` is the handle's {@link StopMark}.
 */
export async function waitForExit(
  container: Docker.Container,
  outputDone: Promise<void>,
  exited?: Promise<number>,
  stops: StopMark = { requested: false },
): Promise<ExitStatus> {
  const askNow = async () => ((await container.wait()) as { StatusCode: number }).StatusCode;
  const code = exited ? await exited.catch(askNow) : await askNow();
  const result = { StatusCode: code };
  await outputDone;
  let oom = false;
  // The engine learns of an OOM kill from a separate event that can land after the exit (well
  // after it on a loaded host): a SIGKILL death (137) of a container with a memory limit is
  // checked again for up to OOM_SETTLE_MS; one without a limit cannot be a container OOM kill.
  const deadline = performance.now() + OOM_SETTLE_MS;
  for (let first = true; result.StatusCode !== 0 && !oom; first = false) {
    if (!first) await sleep(OOM_POLL_MS);
    let info: Docker.ContainerInspectInfo;
    try {
      info = await container.inspect();
    } catch {
      break;
    }
    oom = info.State.OOMKilled === true;
    const limited = (info.HostConfig?.Memory ?? 0) > 0;
    if (result.StatusCode !== 137 || !limited || stops.requested) break;
    if (performance.now() >= deadline) break;
  }
  return exitStatus(result.StatusCode, oom);
}

/** Handle on a task container. */
export class DockerTask implements TaskHandle {
  /** The task's run-scoped ID. */
  readonly id: string;
  /** The container. */
  readonly container: Docker.Container;
  readonly #status: Promise<ExitStatus>;
  readonly #remove: () => Promise<void>;
  #stopping: Promise<void> | undefined;
  /** When SIGKILL is due (a `performance.now()` time); a later stop() may bring it forward. */
  #killAt = Infinity;
  #rearmKill: (() => void) | undefined;
  readonly #stops: StopMark;

  /**
   * Wraps a started container. `remove` schedules its removal with the driver; `stops` is the
   * mark its status reader checks.
   */
  constructor(
    id: string,
    container: Docker.Container,
    status: Promise<ExitStatus>,
    remove: () => Promise<void>,
    stops: StopMark = { requested: false },
  ) {
    this.id = id;
    this.#stops = stops;
    this.container = container;
    this.#status = status;
    this.#remove = remove;
    // A rejection is observed by wait(); do not report it as unhandled meanwhile.
    status.catch(() => {});
  }

  /** Resolves with the exit status after all output was delivered. */
  wait(): Promise<ExitStatus> {
    return this.#status;
  }

  /**
   * SIGTERM to the container, SIGKILL after `graceMs`; resolves once it has exited. A later call
   * with a shorter grace (a second Ctrl-C: 0) brings the SIGKILL forward.
   */
  stop(graceMs: number): Promise<void> {
    this.#stops.requested = true;
    const killAt = performance.now() + Math.max(0, graceMs);
    if (killAt < this.#killAt) {
      this.#killAt = killAt;
      this.#rearmKill?.();
    }
    this.#stopping ??= this.#stopSequence(graceMs > 0);
    return this.#stopping;
  }

  async #stopSequence(term: boolean): Promise<void> {
    try {
      await this.container.kill({ signal: term ? "SIGTERM" : "SIGKILL" });
    } catch (error) {
      // 409: not running; 404: already gone.
      if (statusCode(error) === 409 || statusCode(error) === 404) {
        await delay(2000, this.#status);
        return;
      }
    }
    let timer: LongTimeout | undefined;
    const killDue = new Promise<void>((resolve) => {
      this.#rearmKill = () => {
        timer?.clear();
        timer = longTimeout(resolve, this.#killAt - performance.now());
      };
      this.#rearmKill();
    });
    try {
      const exited = this.#status.then(() => "exited" as const, () => "exited" as const);
      if (await Promise.race([killDue.then(() => "kill" as const), exited]) === "kill") {
        await this.container.kill({ signal: "SIGKILL" }).catch(() => {
          // It exited between the check and the kill.
        });
      }
    } finally {
      timer?.clear();
      this.#rearmKill = undefined;
    }
    await this.#status.catch(() => {});
  }

  /**
   * Removes the container. The removal runs in the background, off the critical path of the
   * next task; `close()` waits for it and reports a failure.
   */
  remove(): Promise<void> {
    return this.#remove();
  }
}

const TINI_EXEC_FAILURE = /^\[FATAL tini \(\d+\)\] exec (.*) failed: ([^\n]*)/;

/**
 * Tasks run under the engine's init (tini), so a command that cannot be executed shows up as
 * tini's "exec ... failed" line and exit code 127 rather than as a start error. This sink
 * wrapper takes that line out of the task's stderr and remembers it. The line can arrive in
 * pieces, so stderr that starts like it is held back until the line is complete (or 1 KiB, or the
 * end of the output); any other output passes straight through.
 */
export function initFailureFilter(output: OutputSink): {
  sink: OutputSink;
  failure: () => string | undefined;
  flush: () => void;
} {
  const PREFIX = "[FATAL tini";
  let failure: string | undefined;
  let held: Uint8Array[] | null = [];
  let heldText = "";
  const decoder = new TextDecoder();
  const release = () => {
    if (held === null) return;
    const chunks = held;
    held = null;
    for (const chunk of chunks) output("stderr", chunk);
  };
  const decide = (final: boolean) => {
    const complete = heldText.includes("\n") || heldText.length >= 1024 || final;
    if (!complete) return;
    const match = TINI_EXEC_FAILURE.exec(heldText);
    if (match) {
      failure = `${match[1]}: ${match[2]}`;
      held = null;
    } else release();
  };
  const sink: OutputSink = (stream, chunk) => {
    if (stream !== "stderr" || held === null) {
      output(stream, chunk);
      return;
    }
    held.push(chunk.slice()); // kept past the call: a copy (the driver may reuse the memory)
    heldText += decoder.decode(chunk.subarray(0, 1024), { stream: true });
    const start = heldText.slice(0, PREFIX.length);
    if (!PREFIX.startsWith(start)) release();
    else decide(false);
  };
  return {
    sink,
    failure: () => failure,
    flush: () => {
      if (held !== null && held.length > 0) decide(true);
      else held = null;
    },
  };
}
