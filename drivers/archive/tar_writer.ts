/**
 * Streaming tar writer: turns a (lazy) sequence of entries into a tar byte stream,
 * pulling the next entry only when the consumer asks for more bytes.
 *
 * @module
 */

import { BLOCK_SIZE, encodeHeader, paddedSize, type TarHeader } from "./tar_format.ts";

/** An entry to write: its header plus, for files, its body. */
export interface TarWriteEntry extends TarHeader {
  /** The file's contents: bytes, or a producer of chunks totalling `size` bytes. */
  readonly body?: Uint8Array | (() => AsyncIterable<Uint8Array>);
}

/** A file for {@link tarFromFiles}: bytes or text, with optional mode. */
export interface SimpleFile {
  /** The contents; text is written as UTF-8. */
  readonly content: Uint8Array | string;
  /** Permission bits; default `0o644`. */
  readonly mode?: number;
}

/**
 * A tar stream of `entries`, written in order. A streamed body that turns out shorter
 * than the declared size is padded with zeros and a longer one is cut, so the archive
 * stays well-formed even when a file changes while it is read.
 */
export function createTarStream(
  entries: Iterable<TarWriteEntry> | AsyncIterable<TarWriteEntry>,
): ReadableStream<Uint8Array> {
  const chunks = generateChunks(entries);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await chunks.next();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(error);
      }
    },
    async cancel() {
      await chunks.return(undefined);
    },
  }, { highWaterMark: 0 });
}

/** A tar stream holding `files` (path → content), with their parent directories. */
export function tarFromFiles(files: Readonly<Record<string, SimpleFile | string>>): ReadableStream<
  Uint8Array
> {
  const encoder = new TextEncoder();
  const mtime = Math.floor(Date.now() / 1000);
  const entries: TarWriteEntry[] = [];
  const directories = new Set<string>();
  for (const [path, file] of Object.entries(files)) {
    const parts = path.split("/").filter((part) => part !== "" && part !== ".");
    for (let i = 1; i < parts.length; i++) {
      const directory = parts.slice(0, i).join("/");
      if (directories.has(directory)) continue;
      directories.add(directory);
      entries.push({ path: directory, type: "directory", mode: 0o755, size: 0, mtime });
    }
    const spec = typeof file === "string" ? { content: file } : file;
    const body = typeof spec.content === "string" ? encoder.encode(spec.content) : spec.content;
    entries.push({
      path: parts.join("/"),
      type: "file",
      mode: spec.mode ?? 0o644,
      size: body.length,
      mtime,
      body,
    });
  }
  return createTarStream(entries);
}

async function* generateChunks(
  entries: Iterable<TarWriteEntry> | AsyncIterable<TarWriteEntry>,
): AsyncGenerator<Uint8Array, void, undefined> {
  for await (const entry of entries) {
    const size = entry.type === "file" ? entry.size : 0;
    yield encodeHeader({ ...entry, size });
    if (size === 0) continue;
    let written = 0;
    if (entry.body instanceof Uint8Array) {
      const body = entry.body.subarray(0, size);
      written = body.length;
      yield body;
    } else if (entry.body !== undefined) {
      for await (const chunk of entry.body()) {
        const part = chunk.subarray(0, size - written);
        if (part.length > 0) {
          written += part.length;
          yield part;
        }
        if (written === size) break;
      }
    }
    const padding = paddedSize(size) - written;
    if (padding > 0) yield new Uint8Array(padding);
  }
  yield new Uint8Array(BLOCK_SIZE * 2);
}
