/**
 * One task's output path: driver chunks → secret masking (across chunk
 * boundaries) → bounded result buffers, `task.output` events and the pipeline's
 * `onOutput` callback.
 *
 * @module
 */

import type { OutputStream } from "../drivers/contract.ts";
import type { OutputCallback } from "../dsl/types.ts";
import { BoundedText } from "./bounded_text.ts";
import type { Masker, StreamMasker } from "./mask.ts";

/** Collects and forwards one task's output. */
export class TaskOutput {
  readonly #maskers: Record<OutputStream, StreamMasker>;
  readonly #buffers: Record<OutputStream, BoundedText>;
  readonly #combined: BoundedText;
  readonly #emit: (stream: OutputStream, text: string) => void;
  readonly #onOutput?: OutputCallback;

  /** Creates the output path for a task. */
  constructor(
    masker: Masker,
    emit: (stream: OutputStream, text: string) => void,
    onOutput?: OutputCallback,
    keep?: number,
  ) {
    this.#maskers = { stdout: masker.stream(), stderr: masker.stream() };
    this.#buffers = { stdout: new BoundedText(keep), stderr: new BoundedText(keep) };
    this.#combined = new BoundedText(16 * 1024);
    this.#emit = emit;
    this.#onOutput = onOutput;
  }

  /** The sink handed to the driver. */
  readonly sink = (stream: OutputStream, chunk: Uint8Array): void => {
    this.#deliver(stream, this.#maskers[stream].push(chunk));
  };

  #deliver(stream: OutputStream, text: string): void {
    if (text === "") return;
    this.#buffers[stream].append(text);
    this.#combined.append(text);
    this.#emit(stream, text);
    if (this.#onOutput) {
      try {
        this.#onOutput(stream, text);
      } catch {
        // A throwing callback must not break the task.
      }
    }
  }

  /** Emits whatever the maskers held back; call once the task has exited. */
  flush(): void {
    for (const stream of ["stdout", "stderr"] as const) {
      this.#deliver(stream, this.#maskers[stream].flush());
    }
  }

  /** The masked, bounded standard output. */
  get stdout(): string {
    return this.#buffers.stdout.toString();
  }

  /** The masked, bounded standard error. */
  get stderr(): string {
    return this.#buffers.stderr.toString();
  }

  /** The last lines of both streams, interleaved as they arrived. */
  lastLines(count: number): string[] {
    return this.#combined.lastLines(count);
  }
}
