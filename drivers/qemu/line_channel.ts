/**
 * A newline-delimited channel over a Unix socket, the framing both QMP and the guest agent
 * use: requests are written as one JSON line each, replies are read line by line. The guest
 * agent prefixes a `guest-sync-delimited` reply with a 0xFF byte, which the reader strips and
 * reports ({@link Line.delimited}).
 *
 * @module
 */

import { concatBytes } from "../bytes.ts";

/** One line read from the channel. */
export interface Line {
  /** The text without the trailing newline and without leading 0xFF bytes. */
  readonly text: string;
  /** Whether a 0xFF byte preceded it (a `guest-sync-delimited` reply). */
  readonly delimited: boolean;
}

const NEWLINE = 0x0a;
const FLUSH = 0xff;
const decoder = new TextDecoder();

/** Reads lines from a connection as they arrive and writes whole lines. */
export class LineChannel {
  readonly #conn: Deno.Conn;
  #buffered: Uint8Array[] = [];
  #closed = false;
  #writing: Promise<void> = Promise.resolve();
  #onLine: (line: Line) => void;
  #onClose: (error?: Error) => void;
  /** Resolves when the reader ended (socket closed or failed). */
  readonly done: Promise<void>;

  /** Wraps `conn`; `onLine` gets every line, `onClose` once when the connection ends. */
  constructor(
    conn: Deno.Conn,
    onLine: (line: Line) => void,
    onClose: (error?: Error) => void,
  ) {
    this.#conn = conn;
    this.#onLine = onLine;
    this.#onClose = onClose;
    this.done = this.#read();
  }

  /** Replaces the line handler (the handshake and the request queue take turns). */
  set onLine(handler: (line: Line) => void) {
    this.#onLine = handler;
  }

  /** Whether the connection ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Writes raw bytes (the handshake's 0xFF). Writes go out strictly in call order, one after
   * the other: concurrent socket writes may complete out of order (and a long one in parts),
   * which would pair replies with the wrong requests.
   */
  writeBytes(bytes: Uint8Array): Promise<void> {
    const write = this.#writing.then(async () => {
      let offset = 0;
      while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
    });
    this.#writing = write.catch(() => {});
    return write;
  }

  /** Writes one JSON message followed by a newline. */
  async writeJson(message: unknown): Promise<void> {
    await this.writeBytes(new TextEncoder().encode(JSON.stringify(message) + "\n"));
  }

  /** Closes the connection (the reader then ends). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    let failure: Error | undefined;
    try {
      while (true) {
        const count = await this.#conn.read(buffer);
        if (count === null) break;
        this.#split(buffer.subarray(0, count));
      }
    } catch (error) {
      if (!this.#closed) failure = error as Error;
    }
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    this.#onClose(failure);
  }

  #split(chunk: Uint8Array): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] !== NEWLINE) continue;
      const part = chunk.subarray(start, i);
      start = i + 1;
      const whole = this.#buffered.length === 0 ? part : concatBytes([...this.#buffered, part]);
      this.#buffered = [];
      this.#emit(whole);
    }
    if (start < chunk.length) this.#buffered.push(chunk.slice(start));
  }

  #emit(bytes: Uint8Array): void {
    let offset = 0;
    let delimited = false;
    // 0xFF may appear anywhere before the JSON (a flush byte the agent echoes as a delimiter).
    while (offset < bytes.length && (bytes[offset] === FLUSH || bytes[offset] === 0x20)) {
      if (bytes[offset] === FLUSH) delimited = true;
      offset++;
    }
    const text = decoder.decode(bytes.subarray(offset)).trim();
    if (text === "") return;
    this.#onLine({ text, delimited });
  }
}

/** Connects to the Unix socket `path`, retrying while it does not exist yet, until `deadline`. */
export async function connectUnix(
  path: string,
  deadline: number,
  signal?: AbortSignal,
): Promise<Deno.UnixConn> {
  let last: unknown;
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    try {
      return await Deno.connect({ transport: "unix", path });
    } catch (error) {
      last = error;
      if (error instanceof Deno.errors.NotCapable) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`could not connect to ${path}: ${(last as Error)?.message ?? "timed out"}`);
}
