/**
 * The ustar header layout with PAX extended headers: encoding and decoding of the
 * 512-byte blocks a tar stream is made of.
 *
 * @module
 */

/** The size of one tar block. */
export const BLOCK_SIZE = 512;

/** The kinds of entries PocketCI reads and writes. */
export type TarEntryType = "file" | "directory" | "symlink" | "hardlink";

/** The metadata of one tar entry. */
export interface TarHeader {
  /** The entry's path inside the archive (directories without the trailing slash). */
  readonly path: string;
  /** What the entry is. */
  readonly type: TarEntryType;
  /** Permission bits (`0o755`, ...). */
  readonly mode: number;
  /** Size of the entry's body in bytes (0 for everything but files). */
  readonly size: number;
  /** Modification time in seconds since the epoch. */
  readonly mtime: number;
  /** The target of a symlink or hardlink. */
  readonly linkTarget?: string;
}

/** A malformed or unsupported tar stream. */
export class TarError extends Error {
  /** Creates a tar error. */
  constructor(message: string) {
    super(message);
    this.name = "TarError";
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MAX_OCTAL_SIZE = 0o77777777777;

const TYPE_FLAGS: Record<TarEntryType, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  directory: "5",
};

/** Encodes `header` as one or more blocks (a PAX header first when ustar cannot hold it). */
export function encodeHeader(header: TarHeader): Uint8Array {
  const name = header.type === "directory" ? `${header.path}/` : header.path;
  const pax: Record<string, string> = {};
  const split = splitName(name);
  if (split === undefined) pax.path = name;
  const link = header.linkTarget ?? "";
  if (encoder.encode(link).length > 100) pax.linkpath = link;
  if (header.size > MAX_OCTAL_SIZE) pax.size = String(header.size);
  const main = ustarBlock({
    name: split?.name ?? truncateBytes(name, 100),
    prefix: split?.prefix ?? "",
    typeFlag: TYPE_FLAGS[header.type],
    mode: header.mode & 0o7777,
    size: header.size > MAX_OCTAL_SIZE ? 0 : header.size,
    mtime: Math.max(0, Math.floor(header.mtime)),
    linkName: pax.linkpath === undefined ? link : truncateBytes(link, 100),
  });
  if (Object.keys(pax).length === 0) return main;
  const body = encodePax(pax);
  const paxHeader = ustarBlock({
    name: truncateBytes(`PaxHeader/${baseName(name)}`, 100),
    prefix: "",
    typeFlag: "x",
    mode: 0o644,
    size: body.length,
    mtime: Math.max(0, Math.floor(header.mtime)),
    linkName: "",
  });
  const out = new Uint8Array(BLOCK_SIZE + paddedSize(body.length) + BLOCK_SIZE);
  out.set(paxHeader, 0);
  out.set(body, BLOCK_SIZE);
  out.set(main, BLOCK_SIZE + paddedSize(body.length));
  return out;
}

/** The body size rounded up to whole blocks. */
export function paddedSize(size: number): number {
  return Math.ceil(size / BLOCK_SIZE) * BLOCK_SIZE;
}

/** One raw header block, decoded but before PAX or GNU long-name records are applied. */
export interface RawHeader {
  /** `prefix/name` as stored. */
  readonly name: string;
  /** The type flag character. */
  readonly typeFlag: string;
  /** Permission bits. */
  readonly mode: number;
  /** Body size. */
  readonly size: number;
  /** Modification time in seconds. */
  readonly mtime: number;
  /** Link target as stored. */
  readonly linkName: string;
}

/** True when the block is all zeros (end-of-archive marker). */
export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK_SIZE; i++) if (block[i] !== 0) return false;
  return true;
}

/** Decodes one header block, verifying its checksum. */
export function decodeRawHeader(block: Uint8Array): RawHeader {
  const stored = parseNumber(block.subarray(148, 156));
  if (stored !== checksum(block)) {
    throw new TarError("invalid tar header (checksum mismatch); is this a tar stream?");
  }
  const name = readString(block, 0, 100);
  const magic = readString(block, 257, 6);
  const prefix = magic.startsWith("ustar") ? readString(block, 345, 155) : "";
  const flag = String.fromCharCode(block[156]);
  return {
    name: prefix ? `${prefix}/${name}` : name,
    typeFlag: flag === "\0" ? "0" : flag,
    mode: parseNumber(block.subarray(100, 108)),
    size: parseNumber(block.subarray(124, 136)),
    mtime: parseNumber(block.subarray(136, 148)),
    linkName: readString(block, 157, 100),
  };
}

/** Parses the records of a PAX extended header body. */
export function decodePax(body: Uint8Array): Record<string, string> {
  const records: Record<string, string> = {};
  let offset = 0;
  while (offset < body.length) {
    let space = offset;
    while (space < body.length && body[space] !== 0x20) space++;
    const length = Number(decoder.decode(body.subarray(offset, space)));
    if (!Number.isInteger(length) || length <= 0 || offset + length > body.length) {
      if (body.subarray(offset).every((byte) => byte === 0)) break;
      throw new TarError("invalid PAX extended header record");
    }
    const record = decoder.decode(body.subarray(space + 1, offset + length - 1));
    const equals = record.indexOf("=");
    if (equals > 0) records[record.slice(0, equals)] = record.slice(equals + 1);
    offset += length;
  }
  return records;
}

/** Decodes a NUL-terminated string field (GNU long-name bodies use this too). */
export function decodeCString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return decoder.decode(end === -1 ? bytes : bytes.subarray(0, end));
}

function encodePax(records: Record<string, string>): Uint8Array {
  let text = "";
  for (const [key, value] of Object.entries(records)) {
    const rest = encoder.encode(` ${key}=${value}\n`).length;
    let length = rest + String(rest).length;
    if (String(length).length !== String(rest).length) length = rest + String(length).length;
    text += `${length} ${key}=${value}\n`;
  }
  return encoder.encode(text);
}

interface UstarFields {
  readonly name: string;
  readonly prefix: string;
  readonly typeFlag: string;
  readonly mode: number;
  readonly size: number;
  readonly mtime: number;
  readonly linkName: string;
}

function ustarBlock(fields: UstarFields): Uint8Array {
  const block = new Uint8Array(BLOCK_SIZE);
  writeString(block, 0, 100, fields.name);
  writeOctal(block, 100, 8, fields.mode);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, fields.mtime);
  block.fill(0x20, 148, 156);
  block[156] = fields.typeFlag.charCodeAt(0);
  writeString(block, 157, 100, fields.linkName);
  writeString(block, 257, 6, "ustar");
  writeString(block, 263, 2, "00");
  writeString(block, 345, 155, fields.prefix);
  writeOctal(block, 148, 7, checksum(block));
  return block;
}

function checksum(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
  return sum;
}

function splitName(name: string): { name: string; prefix: string } | undefined {
  const bytes = encoder.encode(name);
  if (bytes.length <= 100) return { name, prefix: "" };
  if (bytes.length > 256) return undefined;
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== "/") continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (encoder.encode(prefix).length <= 155 && encoder.encode(rest).length <= 100 && rest) {
      return { name: rest, prefix };
    }
  }
  return undefined;
}

function baseName(path: string): string {
  const trimmed = path.endsWith("/") ? path.slice(0, -1) : path;
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

function truncateBytes(text: string, max: number): string {
  let out = text;
  while (encoder.encode(out).length > max) out = out.slice(0, -1);
  return out;
}

function writeString(block: Uint8Array, offset: number, length: number, text: string): void {
  block.set(encoder.encode(text).subarray(0, length), offset);
}

function writeOctal(block: Uint8Array, offset: number, length: number, value: number): void {
  writeString(block, offset, length - 1, value.toString(8).padStart(length - 1, "0"));
}

function readString(block: Uint8Array, offset: number, length: number): string {
  return decodeCString(block.subarray(offset, offset + length));
}

function parseNumber(field: Uint8Array): number {
  if (field[0] & 0x80) {
    // GNU base-256 encoding for values that do not fit in octal.
    let value = field[0] & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i];
    return value;
  }
  const text = decoder.decode(field).replace(/\0.*$/s, "").trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarError(`invalid number "${text}" in tar header`);
  return parseInt(text, 8);
}
