/**
 * Writes frames to a byte stream one after another: every sender awaits its own write,
 * so a slow peer slows the senders down instead of growing a queue.
 *
 * @module
 */

/** Serialises frame writes on one stream. */
export class FrameWriter {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #closed = false;

  /** Writes to `writable` (locks it). */
  constructor(writable: WritableStream<Uint8Array>) {
    this.#writer = writable.getWriter();
  }

  /** True once {@link close} ran or a write failed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Writes one encoded frame; rejects once the stream is closed or broken. */
  async send(frame: Uint8Array): Promise<void> {
    if (this.#closed) throw new Error("the agent connection is closed");
    try {
      await this.#writer.write(frame);
    } catch (error) {
      this.#closed = true;
      throw error;
    }
  }

  /** Writes `frame` and ignores a closed stream (for best-effort replies). */
  trySend(frame: Uint8Array): Promise<void> {
    return this.send(frame).catch(() => {});
  }

  /** Closes the stream (pending writes are flushed first when possible). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writer.close().catch(() => {});
  }
}
