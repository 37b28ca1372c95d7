/**
 * Splits the engine's multiplexed attach/logs/exec stream (8-byte frame headers: stream type and
 * payload length) into stdout and stderr, delivering payload bytes as soon as they arrive, even
 * when a frame spans several chunks.
 *
 * @module
 */

import type { OutputSink, OutputStream } from "../contract.ts";

/** Feeds chunks of a multiplexed stream in; calls the sink with demultiplexed payloads. */
export class Demuxer {
  readonly #sink: OutputSink;
  readonly #header = new Uint8Array(8);
  #headerFill = 0;
  #remaining = 0;
  #stream: OutputStream | undefined;

  /** Creates a demuxer that writes to `sink`. */
  constructor(sink: OutputSink) {
    this.#sink = sink;
  }

  /** Processes one chunk. */
  push(chunk: Uint8Array): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#remaining === 0) {
        const take = Math.min(8 - this.#headerFill, chunk.length - offset);
        this.#header.set(chunk.subarray(offset, offset + take), this.#headerFill);
        this.#headerFill += take;
        offset += take;
        if (this.#headerFill < 8) return;
        this.#headerFill = 0;
        const type = this.#header[0];
        this.#stream = type === 1 ? "stdout" : type === 2 || type === 3 ? "stderr" : undefined;
        this.#remaining = new DataView(this.#header.buffer).getUint32(4);
        continue;
      }
      const take = Math.min(this.#remaining, chunk.length - offset);
      if (this.#stream) this.#sink(this.#stream, chunk.subarray(offset, offset + take));
      this.#remaining -= take;
      offset += take;
    }
  }
}
