/**
 * A bounded record of a process's output, so a re-attached handle can replay it
 * from the start: the first `headBytes` and the last `tailBytes` are kept, with a
 * marker where the middle was dropped.
 *
 * @module
 */

import type { OutputStream } from "../contract.ts";

/** One recorded output chunk. */
export interface ReplayChunk {
  /** The stream it came from. */
  readonly stream: OutputStream;
  /** The bytes. */
  readonly chunk: Uint8Array;
}

/** Output kept for replay, bounded in memory. */
export class ReplayBuffer {
  readonly #headLimit: number;
  readonly #tailLimit: number;
  readonly #head: ReplayChunk[] = [];
  #headBytes = 0;
  #tail: ReplayChunk[] = [];
  #tailStart = 0;
  #tailBytes = 0;
  #dropped = 0;

  /** Keeps at most `headBytes` from the start and `tailBytes` from the end. */
  constructor(headBytes = 1024 * 1024, tailBytes = 4 * 1024 * 1024) {
    this.#headLimit = headBytes;
    this.#tailLimit = tailBytes;
  }

  /** Records a chunk (the caller must not reuse its memory). */
  push(stream: OutputStream, chunk: Uint8Array): void {
    if (this.#headBytes < this.#headLimit && this.#tail.length === this.#tailStart) {
      const room = this.#headLimit - this.#headBytes;
      const part = chunk.subarray(0, room);
      this.#head.push({ stream, chunk: part });
      this.#headBytes += part.length;
      if (part.length === chunk.length) return;
      chunk = chunk.subarray(part.length);
    }
    this.#tail.push({ stream, chunk });
    this.#tailBytes += chunk.length;
    while (this.#tailBytes > this.#tailLimit && this.#tail.length - this.#tailStart > 1) {
      const dropped = this.#tail[this.#tailStart++];
      this.#tailBytes -= dropped.chunk.length;
      this.#dropped += dropped.chunk.length;
    }
    if (this.#tailStart > 1024 && this.#tailStart * 2 > this.#tail.length) {
      this.#tail = this.#tail.slice(this.#tailStart);
      this.#tailStart = 0;
    }
  }

  /** Bytes dropped from the middle so far. */
  get droppedBytes(): number {
    return this.#dropped;
  }

  /** The recorded output in order, with a stderr marker where bytes were dropped. */
  chunks(): ReplayChunk[] {
    const tail = this.#tail.slice(this.#tailStart);
    if (this.#dropped === 0) return [...this.#head, ...tail];
    const marker = new TextEncoder().encode(
      `\n[pocketci: ${this.#dropped} bytes of output omitted from the replay]\n`,
    );
    return [...this.#head, { stream: "stderr", chunk: marker }, ...tail];
  }
}
