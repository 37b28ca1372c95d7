/**
 * Just enough of the tar format for the docker driver: writing directory entries (the empty helper
 * image, parent directories before an upload) and re-naming the entries of archives the engine
 * returns, so that `getArchive` names everything relative to the volume root.
 *
 * @module
 */

import { concatBytes } from "../bytes.ts";

const BLOCK = 512;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function writeString(block: Uint8Array, offset: number, length: number, value: string): void {
  const bytes = encoder.encode(value);
  block.set(bytes.subarray(0, length), offset);
}

function writeOctal(block: Uint8Array, offset: number, length: number, value: number): void {
  writeString(block, offset, length - 1, value.toString(8).padStart(length - 1, "0"));
}

function checksum(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : block[i];
  return sum;
}

function sealHeader(block: Uint8Array): Uint8Array {
  writeString(block, 148, 8, checksum(block).toString(8).padStart(6, "0") + "\0 ");
  return block;
}

/** The fields of a tar header this module writes. */
export interface TarEntryHeader {
  /** Entry name (directories end with `/`); at most 100 bytes, longer names go in a PAX record. */
  readonly name: string;
  /** `0` regular file, `5` directory, `x` PAX extended header. */
  readonly type: "0" | "5" | "x";
  /** Data size in bytes. */
  readonly size: number;
  /** Permission bits. */
  readonly mode: number;
}

/** Builds one 512-byte ustar header block. */
export function tarHeader(entry: TarEntryHeader): Uint8Array {
  const block = new Uint8Array(BLOCK);
  writeString(block, 0, 100, entry.name);
  writeOctal(block, 100, 8, entry.mode);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeOctal(block, 124, 12, entry.size);
  writeOctal(block, 136, 12, Math.floor(Date.now() / 1000));
  writeString(block, 156, 1, entry.type);
  writeString(block, 257, 6, "ustar\0");
  writeString(block, 263, 2, "00");
  return sealHeader(block);
}

/** The two zero blocks that end an archive. */
export function tarEnd(): Uint8Array {
  return new Uint8Array(BLOCK * 2);
}

/** A complete archive holding only the given directories (each created with mode 0755). */
export function directoriesTar(dirs: readonly string[]): Uint8Array {
  return entriesTar(dirs.map((name) => ({ name })));
}

/** One entry of {@link entriesTar}: a directory when it has no data, else a regular file. */
export interface TarEntry {
  /** Entry name (at most 100 bytes). */
  readonly name: string;
  /** File content; a directory when absent. */
  readonly data?: Uint8Array;
  /** Permission bits (default 0755 for directories, 0644 for files). */
  readonly mode?: number;
}

/** A complete archive of directories and small files, in the order given. */
export function entriesTar(entries: readonly TarEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const entry of entries) {
    const name = entry.name.replace(/\/+$/, "");
    if (entry.data === undefined) {
      parts.push(tarHeader({ name: `${name}/`, type: "5", size: 0, mode: entry.mode ?? 0o755 }));
      continue;
    }
    parts.push(tarHeader({ name, type: "0", size: entry.data.length, mode: entry.mode ?? 0o644 }));
    const padded = new Uint8Array(Math.ceil(entry.data.length / BLOCK) * BLOCK);
    padded.set(entry.data);
    parts.push(padded);
  }
  parts.push(tarEnd());
  return concatBytes(parts);
}

function paxRecord(key: string, value: string): Uint8Array {
  // The length prefix counts itself, so grow it until it is stable.
  const body = ` ${key}=${value}\n`;
  const bodyLength = encoder.encode(body).length;
  let length = bodyLength + 1;
  while (String(length).length + bodyLength !== length) length = String(length).length + bodyLength;
  return encoder.encode(`${length}${body}`);
}

function paxHeader(records: readonly [string, string][]): Uint8Array[] {
  const data = concatBytes(records.map(([k, v]) => paxRecord(k, v)));
  const padded = new Uint8Array(Math.ceil(data.length / BLOCK) * BLOCK);
  padded.set(data);
  return [tarHeader({ name: "././@PaxHeader", type: "x", size: data.length, mode: 0o644 }), padded];
}

function parsePax(data: Uint8Array): Map<string, string> {
  const records = new Map<string, string>();
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    if (space < 0) break;
    const length = Number(decoder.decode(data.subarray(offset, space)));
    if (!Number.isFinite(length) || length <= 0) break;
    const record = decoder.decode(data.subarray(space + 1, offset + length - 1));
    const eq = record.indexOf("=");
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    offset += length;
  }
  return records;
}

function readString(block: Uint8Array, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return decoder.decode(end < 0 ? field : field.subarray(0, end));
}

function readSize(block: Uint8Array): number {
  if (block[124] & 0x80) {
    // GNU base-256 encoding for sizes of 8 GiB and more.
    let value = 0;
    for (let i = 125; i < 136; i++) value = value * 256 + block[i];
    return value;
  }
  const text = readString(block, 124, 12).trim();
  return text === "" ? 0 : parseInt(text, 8);
}

/** Reads exact byte counts from a stream of arbitrarily sized chunks. */
class ByteReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buffer: Uint8Array = new Uint8Array(0);

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  async #fill(min: number): Promise<boolean> {
    while (this.#buffer.length < min) {
      const { value, done } = await this.#reader.read();
      if (done) return false;
      this.#buffer = this.#buffer.length === 0 ? value : concatBytes([this.#buffer, value]);
    }
    return true;
  }

  /** Exactly `n` bytes, or `null` at the end of the stream. */
  async exact(n: number): Promise<Uint8Array | null> {
    if (!(await this.#fill(n))) return null;
    const out = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  /** Between 1 and `n` bytes, or `null` at the end of the stream. */
  async upTo(n: number): Promise<Uint8Array | null> {
    if (!(await this.#fill(1))) return null;
    const out = this.#buffer.subarray(0, Math.min(n, this.#buffer.length));
    this.#buffer = this.#buffer.subarray(out.length);
    return out;
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

/** Maps an entry name to its new name, or `null` to drop the entry. */
export type RenameEntry = (name: string) => string | null;

/**
 * Copies the entries of one archive with new names (the data is streamed, never buffered whole),
 * without the end-of-archive blocks, so several archives can be concatenated into one.
 * Hard-link targets are renamed with the same function.
 */
export async function* renameEntries(
  input: ReadableStream<Uint8Array>,
  rename: RenameEntry,
): AsyncGenerator<Uint8Array> {
  const reader = new ByteReader(input);
  let pax = new Map<string, string>();
  let longName: string | undefined;
  let longLink: string | undefined;
  try {
    while (true) {
      const header = await reader.exact(BLOCK);
      if (header === null || header.every((b) => b === 0)) return;
      const type = String.fromCharCode(header[156] || 0x30);
      let size = readSize(header);
      if (type === "x" || type === "L" || type === "K" || type === "g") {
        const data = await reader.exact(Math.ceil(size / BLOCK) * BLOCK);
        if (data === null) throw new Error("truncated tar archive");
        const payload = data.subarray(0, size);
        if (type === "x") pax = parsePax(payload);
        else if (type === "L") longName = readString(payload, 0, payload.length);
        else if (type === "K") longLink = readString(payload, 0, payload.length);
        continue;
      }
      const prefix = readString(header, 345, 155);
      const shortName = readString(header, 0, 100);
      const name = pax.get("path") ?? longName ?? (prefix ? `${prefix}/${shortName}` : shortName);
      const link = pax.get("linkpath") ?? longLink ?? readString(header, 157, 100);
      if (pax.has("size")) size = Number(pax.get("size"));
      const newName = rename(name);
      const records = [...pax].filter(([k]) => k !== "path" && k !== "linkpath");
      pax = new Map();
      longName = undefined;
      longLink = undefined;
      const dataBlocks = Math.ceil(size / BLOCK) * BLOCK;
      if (newName === null || newName === "") {
        await skip(reader, dataBlocks);
        continue;
      }
      const newLink = type === "1" ? (rename(link) ?? link) : link;
      const out = header.slice();
      const nameBytes = encoder.encode(newName);
      const linkBytes = encoder.encode(newLink);
      if (nameBytes.length > 100) records.push(["path", newName]);
      if (linkBytes.length > 100) records.push(["linkpath", newLink]);
      out.fill(0, 0, 100);
      out.fill(0, 345, 500);
      out.set(nameBytes.subarray(0, 100), 0);
      out.fill(0, 157, 257);
      out.set(linkBytes.subarray(0, 100), 157);
      if (records.length > 0) yield* paxHeader(records);
      yield sealHeader(out);
      let left = dataBlocks;
      while (left > 0) {
        const chunk = await reader.upTo(left);
        if (chunk === null) throw new Error("truncated tar archive");
        left -= chunk.length;
        yield chunk;
      }
    }
  } finally {
    await reader.cancel();
  }
}

async function skip(reader: ByteReader, n: number): Promise<void> {
  let left = n;
  while (left > 0) {
    const chunk = await reader.upTo(left);
    if (chunk === null) throw new Error("truncated tar archive");
    left -= chunk.length;
  }
}

/** Turns an async generator of chunks into a byte stream (pulling on demand). */
export function generatorStream(gen: AsyncGenerator<Uint8Array>): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await gen.next();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(error);
      }
    },
    async cancel() {
      await gen.return(undefined);
    },
  });
}
