/**
 * A task run through the agent: output fans out to the sinks and a bounded replay buffer
 * (for `attachTask`); `stop(grace)` sends SIGTERM to the group, then SIGKILL after the
 * grace (a later call with a shorter grace kills sooner).
 *
 * @module
 */

import type { ExitStatus, OutputSink, OutputStream, TaskHandle } from "../contract.ts";
import { ReplayBuffer } from "../native/replay_buffer.ts";
import type { AgentExec } from "../agent_client/client.ts";

/** Output of one exec: replay plus live sinks. */
export class OutputFan {
  readonly #replay = new ReplayBuffer();
  readonly #sinks = new Set<OutputSink>();
  #done = false;

  /** The sink to give the agent client. */
  readonly sink: OutputSink = (stream: OutputStream, chunk: Uint8Array): void => {
    this.#replay.push(stream, chunk.slice());
    for (const sink of this.#sinks) {
      try {
        sink(stream, chunk);
      } catch {
        // A failing sink does not stop the others.
      }
    }
  };

  /** Adds a sink, replaying what came so far when asked. */
  add(sink: OutputSink, replay: boolean): void {
    if (replay) {
      for (const { stream, chunk } of this.#replay.chunks()) {
        try {
          sink(stream, chunk);
        } catch {
          // As above.
        }
      }
    }
    if (!this.#done) this.#sinks.add(sink);
  }

  /** No more output will come. */
  finish(): void {
    this.#done = true;
    this.#sinks.clear();
  }
}

/** Stops an exec: SIGTERM, then SIGKILL once `graceMs` passed; resolves when it exited. */
export async function stopExec(
  exec: AgentExec,
  exited: Promise<unknown>,
  graceMs: number,
): Promise<void> {
  let finished = false;
  const done = exited.then(() => finished = true, () => finished = true);
  if (graceMs > 0) {
    await exec.kill("SIGTERM").catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([done, new Promise((resolve) => timer = setTimeout(resolve, graceMs))]);
    clearTimeout(timer);
  }
  if (!finished) await exec.kill("SIGKILL").catch(() => {});
  await done;
}

/** A task handle over an agent exec. */
export class AgentTask implements TaskHandle {
  readonly id: string;
  readonly #exec: AgentExec;
  readonly #status: Promise<ExitStatus>;
  readonly #remove: () => Promise<void>;
  #removed: Promise<void> | undefined;
  /** The task's output. */
  readonly output: OutputFan;

  /** Wraps a started exec. */
  constructor(id: string, exec: AgentExec, output: OutputFan, remove: () => Promise<void>) {
    this.id = id;
    this.#exec = exec;
    this.output = output;
    this.#remove = remove;
    this.#status = exec.wait().finally(() => output.finish());
    this.#status.catch(() => {});
  }

  /** Resolves with the exit status once all output was delivered. */
  wait(): Promise<ExitStatus> {
    return this.#status;
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`. */
  stop(graceMs: number): Promise<void> {
    return stopExec(this.#exec, this.#status, graceMs);
  }

  /** Removes the task's directory (once). */
  remove(): Promise<void> {
    this.#removed ??= this.#remove();
    return this.#removed;
  }
}
