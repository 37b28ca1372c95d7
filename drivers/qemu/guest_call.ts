/**
 * One command run in the guest through the wrapper (see `wrapper.ts`): started with
 * `guest-exec`, its output followed from the files on the 9p share as they grow, its end and
 * exit status taken from the `status` file (the agent is asked once a second in case the
 * wrapper died without writing it, and by polling `guest-exec-status` with backoff when the
 * guest has no share), and stopped by signalling its process group through the agent.
 *
 * @module
 */

import { DriverError, type ExitStatus, type OutputSink, type OutputStream } from "../contract.ts";
import { ReplayBuffer } from "../native/replay_buffer.ts";
import type { QgaClient } from "./qga.ts";
import { statusOf, wrapperArgs, type WrapperCall } from "./wrapper.ts";

/** Agent request timeout: a reply later than this means the agent is stuck. */
export const AGENT_TIMEOUT_MS = 30_000;
const READ_CHUNK = 256 * 1024;

/** What a call needs from the driver. */
export interface CallContext {
  /** The agent. */
  readonly qga: QgaClient;
  /** The call's I/O directory on the host and in the guest; absent without a share. */
  readonly io?: { readonly host: string; readonly guest: string };
  /** The task's name, for messages. */
  readonly name: string;
}

/** A running (or finished) guest command. */
export class GuestCall {
  readonly #ctx: CallContext;
  readonly #sinks = new Set<OutputSink>();
  readonly #replay: ReplayBuffer | undefined;
  #pid = 0;
  #pgid: number | undefined;
  #exit: ExitStatus | undefined;
  #exited!: (status: ExitStatus) => void;
  /** Resolves with the exit status once all output was delivered. */
  readonly status: Promise<ExitStatus>;
  #files: { stdout?: Deno.FsFile; stderr?: Deno.FsFile } = {};
  #killAt = Infinity;
  #killTimer: ReturnType<typeof setTimeout> | undefined;
  #termSent = false;
  #abandoned: string | undefined;
  #wake: (() => void) | undefined;

  /** A call; `replay` keeps output for re-attaching (tasks). */
  constructor(ctx: CallContext, replay: boolean) {
    this.#ctx = ctx;
    this.#replay = replay ? new ReplayBuffer() : undefined;
    this.status = new Promise((resolve) => this.#exited = resolve);
  }

  /** Whether it ended. */
  get finished(): boolean {
    return this.#exit !== undefined;
  }

  /** Adds an output sink; with `replay`, first gives it everything so far. */
  addSink(sink: OutputSink, replay: boolean): void {
    if (replay && this.#replay) {
      for (const { stream, chunk } of this.#replay.chunks()) sink(stream, chunk);
    }
    if (this.#exit === undefined) this.#sinks.add(sink);
  }

  /**
   * Starts the wrapper. Resolves once the command runs (its PID is known), rejects with a
   * {@link DriverError} when it could not start (command not found, a mount failed ...).
   */
  async start(
    call: Omit<WrapperCall, "ioDir">,
    env: readonly string[],
    stdin: Uint8Array | undefined,
  ): Promise<void> {
    const io = this.#ctx.io;
    if (io) {
      await Deno.mkdir(io.host, { recursive: true });
      await Promise.all([
        Deno.writeFile(`${io.host}/stdout`, new Uint8Array()),
        Deno.writeFile(`${io.host}/stderr`, new Uint8Array()),
      ]);
      this.#files = {
        stdout: await Deno.open(`${io.host}/stdout`, { read: true }),
        stderr: await Deno.open(`${io.host}/stderr`, { read: true }),
      };
    }
    try {
      this.#pid = await this.#ctx.qga.exec({
        path: "/bin/sh",
        args: wrapperArgs({ ...call, ioDir: io?.guest ?? "" }),
        env,
        input: stdin,
        capture: io === undefined,
      }, AGENT_TIMEOUT_MS);
    } catch (error) {
      this.#closeFiles();
      throw new DriverError(
        "failed",
        `task "${this.#ctx.name}": the guest agent could not start it: ${(error as Error).message}`,
      );
    }
    const started = io ? this.#follow(io.host) : this.#poll();
    await started;
  }

  /**
   * Stops it: SIGTERM to its process group, SIGKILL after `graceMs` (a later call with a
   * shorter grace brings the SIGKILL forward). Resolves once it ended.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.#exit !== undefined) return;
    const killAt = Date.now() + Math.max(0, graceMs);
    if (killAt < this.#killAt) {
      this.#killAt = killAt;
      clearTimeout(this.#killTimer);
      if (graceMs <= 0) {
        await this.#signal("KILL");
      } else {
        if (!this.#termSent) {
          this.#termSent = true;
          await this.#signal("TERM");
        }
        this.#killTimer = setTimeout(() => this.#signal("KILL"), killAt - Date.now());
      }
    }
    this.#wake?.();
    await this.status;
  }

  /** Ends the call without the guest (the VM is going away): it reports `reason` as SIGKILL. */
  abandon(reason: string): void {
    this.#abandoned = reason;
    this.#wake?.();
  }

  async #signal(name: "TERM" | "KILL"): Promise<void> {
    if (this.#exit !== undefined || this.#pgid === undefined) return;
    try {
      const pid = await this.#ctx.qga.exec({
        path: "/bin/sh",
        args: [
          "-c",
          'kill -s "$1" -- "-$2" 2>/dev/null; exit 0',
          "pocketci-kill",
          name,
          String(this.#pgid),
        ],
        capture: false,
      }, AGENT_TIMEOUT_MS);
      // Reaped so the agent forgets it; the signal is sent by then.
      for (let wait = 2; wait < 2000; wait *= 2) {
        if ((await this.#ctx.qga.execStatus(pid, AGENT_TIMEOUT_MS)).exited) break;
        await sleep(wait);
      }
    } catch {
      // The VM is going away; close() reports the task as killed.
    }
  }

  /** Follows the output files until the wrapper wrote its status and the agent saw it exit. */
  #follow(host: string): Promise<void> {
    let startedResolve!: () => void;
    let startedReject!: (error: Error) => void;
    const started = new Promise<void>((resolve, reject) => {
      startedResolve = resolve;
      startedReject = reject;
    });
    let startSettled = false;
    const buffer = new Uint8Array(READ_CHUNK);
    (async () => {
      let idle = 0;
      const began = Date.now();
      let lastAgentCheck = Date.now();
      while (true) {
        const got = await this.#drain(buffer);
        if (!startSettled) {
          // The wrapper renames a complete file into place; an empty read is never a verdict.
          const error = await Deno.readTextFile(`${host}/error`).catch(() => undefined);
          if (error !== undefined && error.trim() !== "") {
            startSettled = true;
            await this.#finish((await this.#waitAgent(false)) ?? { code: 127 }, buffer);
            startedReject(startError(this.#ctx.name, error));
            return;
          }
          const pid = await Deno.readTextFile(`${host}/pid`).catch(() => "");
          if (/^\d+\s*$/.test(pid)) {
            this.#pgid = Number(pid);
            startSettled = true;
            startedResolve();
          }
        }
        if (this.#abandoned !== undefined) {
          await this.#finish({ code: 137, signal: 9 }, buffer);
          break;
        }
        // The wrapper's own record of the exit: the call ends without another agent round
        // trip, and the agent forgets the wrapper process in the background.
        const written = await Deno.readTextFile(`${host}/status`).catch(() => undefined);
        if (written !== undefined && /^\d+\n$/.test(written)) {
          this.#reap();
          await this.#finish(statusOf(Number(written)), buffer);
          break;
        }
        if (Date.now() - lastAgentCheck > 1000) {
          lastAgentCheck = Date.now();
          const status = await this.#waitAgent(true);
          if (status !== undefined) {
            await this.#finish(status, buffer);
            break;
          }
        }
        idle = got ? 0 : idle + 1;
        // Short commands end within moments: poll the (cheap, host-side) files closely at first.
        const early = Date.now() - began < 300;
        await this.#sleepOrWake(early ? 2 : got ? 5 : Math.min(5 * 2 ** idle, 50));
      }
      if (!startSettled) startedResolve();
    })().catch((error: Error) => {
      if (!startSettled) startedReject(error);
      this.#finishNow({ code: 137, signal: 9 });
    });
    return started;
  }

  /** Without a share: polls the agent with backoff, output arrives at exit. */
  #poll(): Promise<void> {
    (async () => {
      for (let wait = 5;; wait = Math.min(wait * 2, 200)) {
        if (this.#abandoned !== undefined) return this.#finishNow({ code: 137, signal: 9 });
        const status = await this.#ctx.qga.execStatus(this.#pid, AGENT_TIMEOUT_MS);
        if (status.exited) {
          if (status.stdout?.length) this.#emit("stdout", status.stdout);
          if (status.stderr?.length) this.#emit("stderr", status.stderr);
          return this.#finishNow(statusOf(status.exitcode ?? 0, status.signal));
        }
        await this.#sleepOrWake(wait);
      }
    })().catch(() => this.#finishNow({ code: 137, signal: 9 }));
    return Promise.resolve();
  }

  /**
   * Lets the agent forget the ended wrapper (it keeps every exited process until its status is
   * read once), off the call's path: a few delayed queries, errors ignored.
   */
  #reap(): void {
    const qga = this.#ctx.qga;
    const pid = this.#pid;
    void (async () => {
      for (let wait = 20; wait < 5000; wait *= 4) {
        await sleep(wait);
        if ((await qga.execStatus(pid, AGENT_TIMEOUT_MS)).exited) return;
      }
    })().catch(() => {});
  }

  /**
   * The wrapper's exit status from the agent. With `once`, a single query (undefined while it
   * runs); otherwise polls briefly (the wrapper exits right after writing its status).
   */
  async #waitAgent(once: boolean): Promise<ExitStatus | undefined> {
    for (let wait = 1;; wait = Math.min(wait * 2, 50)) {
      if (this.#abandoned !== undefined) return { code: 137, signal: 9 };
      const status = await this.#ctx.qga.execStatus(this.#pid, AGENT_TIMEOUT_MS);
      if (status.exited) return statusOf(status.exitcode ?? 0, status.signal);
      if (once) return undefined;
      await sleep(wait);
    }
  }

  async #drain(buffer: Uint8Array): Promise<boolean> {
    let got = false;
    for (const stream of ["stdout", "stderr"] as const) {
      const file = this.#files[stream];
      if (file === undefined) continue;
      while (true) {
        const count = await file.read(buffer);
        if (count === null || count === 0) break;
        got = true;
        this.#emit(stream, buffer.subarray(0, count));
      }
    }
    return got;
  }

  #emit(stream: OutputStream, chunk: Uint8Array): void {
    if (this.#replay) this.#replay.push(stream, chunk.slice());
    for (const sink of this.#sinks) sink(stream, chunk);
  }

  async #finish(status: ExitStatus, buffer: Uint8Array): Promise<void> {
    await this.#drain(buffer).catch(() => false);
    this.#finishNow(status);
  }

  #finishNow(status: ExitStatus): void {
    if (this.#exit !== undefined) return;
    this.#exit = status;
    clearTimeout(this.#killTimer);
    this.#closeFiles();
    this.#sinks.clear();
    this.#exited(status);
  }

  #closeFiles(): void {
    for (const file of Object.values(this.#files)) {
      try {
        file?.close();
      } catch {
        // already closed
      }
    }
    this.#files = {};
  }

  #sleepOrWake(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}

function startError(name: string, text: string): DriverError {
  const [kind, ...rest] = text.trim().split(": ");
  const message = rest.join(": ");
  if (kind === "notfound") {
    return new DriverError("command_not_found", `task "${name}": ${message} in the VM`);
  }
  return new DriverError(
    kind === "workdir" ? "invalid" : "failed",
    `task "${name}": ${message} in the VM`,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
