/**
 * Streaming tar reader: yields one entry at a time with its body as a stream of
 * chunks, so archives larger than memory can be extracted.
 *
 * @module
 */

import {
  BLOCK_SIZE,
  decodeCString,
  decodePax,
  decodeRawHeader,
  isZeroBlock,
  paddedSize,
  type TarEntryType,
  TarError,
  type TarHeader,
} from "./tar_format.ts";

/** One entry read from a tar stream. */
export interface TarReadEntry extends TarHeader {
  /**
   * The entry's body, chunk by chunk. Read it before asking for the next entry;
   * whatever is left unread is skipped.
   */
  body(): AsyncIterable<Uint8Array>;
  /** The whole body in one array (for small files). */
  bytes(): Promise<Uint8Array>;
}

class ByteSource {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #done = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** Up to `max` bytes, or undefined at the end of the stream. */
  async next(max: number): Promise<Uint8Array | undefined> {
    while (this.#chunk.length === 0) {
      if (this.#done) return undefined;
      const { value, done } = await this.#reader.read();
      if (done) this.#done = true;
      else this.#chunk = value;
    }
    const out = this.#chunk.subarray(0, max);
    this.#chunk = this.#chunk.subarray(out.length);
    return out;
  }

  /** Exactly `size` bytes; undefined only when the stream ended before the first byte. */
  async exact(size: number): Promise<Uint8Array | undefined> {
    const first = await this.next(size);
    if (first === undefined) return undefined;
    if (first.length === size) return first;
    const out = new Uint8Array(size);
    out.set(first);
    let filled = first.length;
    while (filled < size) {
      const part = await this.next(size - filled);
      if (part === undefined) throw new TarError("unexpected end of tar stream");
      out.set(part, filled);
      filled += part.length;
    }
    return out;
  }

  async skip(size: number): Promise<void> {
    let left = size;
    while (left > 0) {
      const part = await this.next(left);
      if (part === undefined) throw new TarError("unexpected end of tar stream");
      left -= part.length;
    }
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "5": "directory",
};

/**
 * Reads the entries of a tar stream. Supports ustar, PAX extended headers and GNU
 * long names; other entry types (devices, FIFOs) are skipped.
 */
export async function* readTar(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<TarReadEntry, void, undefined> {
  const source = new ByteSource(stream);
  try {
    let pax: Record<string, string> = {};
    let longName: string | undefined;
    let longLink: string | undefined;
    while (true) {
      const block = await source.exact(BLOCK_SIZE);
      if (block === undefined || isZeroBlock(block)) return;
      const raw = decodeRawHeader(block);
      if (
        raw.typeFlag === "x" || raw.typeFlag === "g" || raw.typeFlag === "L" || raw.typeFlag === "K"
      ) {
        const body = (await source.exact(raw.size)) ?? new Uint8Array(0);
        await source.skip(paddedSize(raw.size) - raw.size);
        if (raw.typeFlag === "x") pax = { ...pax, ...decodePax(body) };
        else if (raw.typeFlag === "L") longName = decodeCString(body);
        else if (raw.typeFlag === "K") longLink = decodeCString(body);
        continue;
      }
      const size = pax.size !== undefined ? Number(pax.size) : raw.size;
      const rawPath = pax.path ?? longName ?? raw.name;
      const linkTarget = pax.linkpath ?? longLink ?? raw.linkName;
      const mtime = pax.mtime !== undefined ? Math.floor(Number(pax.mtime)) : raw.mtime;
      pax = {};
      longName = undefined;
      longLink = undefined;
      const type = TYPES[raw.typeFlag] ??
        (rawPath.endsWith("/") && raw.typeFlag === "0" ? "directory" : undefined);
      let remaining = size;
      const readBody = async function* (): AsyncGenerator<Uint8Array> {
        while (remaining > 0) {
          const part = await source.next(Math.min(remaining, 64 * 1024));
          if (part === undefined) throw new TarError("unexpected end of tar stream");
          remaining -= part.length;
          yield part;
        }
      };
      if (type !== undefined) {
        const entry: TarReadEntry = {
          path: rawPath.replace(/\/+$/, ""),
          type: rawPath.endsWith("/") && type === "file" ? "directory" : type,
          mode: raw.mode,
          size: type === "file" ? size : 0,
          mtime,
          linkTarget: type === "symlink" || type === "hardlink" ? linkTarget : undefined,
          body: readBody,
          bytes: async () => {
            const out = new Uint8Array(remaining);
            let offset = 0;
            for await (const part of readBody()) {
              out.set(part, offset);
              offset += part.length;
            }
            return out;
          },
        };
        yield entry;
      }
      await source.skip(remaining + paddedSize(size) - size);
    }
  } finally {
    await source.cancel();
  }
}
