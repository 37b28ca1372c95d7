/**
 * Pure-TypeScript tar support (ustar with PAX and GNU long names), used to move
 * files in and out of volumes on every driver:
 *
 * - {@link packDirectory}: a host directory (or some paths in it) as a tar stream;
 * - {@link extractTar}: a tar stream into a directory, refusing anything that escapes it;
 * - {@link readTar} / {@link listTar}: the entries of a tar stream, streamed or collected;
 * - {@link createTarStream} / {@link tarFromFiles}: build a tar stream from entries.
 *
 * @module
 */

import { readTar } from "./tar_reader.ts";
import { TarError, type TarHeader } from "./tar_format.ts";

export { packDirectory, type PackOptions } from "./pack.ts";
export { type ExtractOptions, type ExtractSummary, extractTar } from "./extract.ts";
export { readTar, type TarReadEntry } from "./tar_reader.ts";
export {
  createTarStream,
  type SimpleFile,
  tarFromFiles,
  type TarWriteEntry,
} from "./tar_writer.ts";
export { type TarEntryType, TarError, type TarHeader } from "./tar_format.ts";
export { ArchivePathError, isInside, joinPath, normalizeRelative } from "./paths.ts";
export { compileExcludes, type ExcludeMatcher } from "./glob.ts";

/** One entry collected by {@link listTar}. */
export interface TarListEntry extends TarHeader {
  /** A file's contents (absent for directories and links). */
  readonly content?: Uint8Array;
}

/** Options for {@link listTar}. */
export interface ListTarOptions {
  /** Refuse archives whose file contents exceed this many bytes in total (default 64 MiB). */
  readonly maxBytes?: number;
}

/**
 * Reads every entry of a tar stream into memory, file contents included. Meant for
 * small archives such as `readFiles`; rejects with a {@link TarError} beyond `maxBytes`.
 */
export async function listTar(
  stream: ReadableStream<Uint8Array>,
  options: ListTarOptions = {},
): Promise<TarListEntry[]> {
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  const entries: TarListEntry[] = [];
  let total = 0;
  for await (const entry of readTar(stream)) {
    const { body: _body, bytes: _bytes, ...header } = entry;
    if (entry.type !== "file") {
      entries.push(header);
      continue;
    }
    total += entry.size;
    if (total > maxBytes) {
      throw new TarError(`archive contents exceed ${maxBytes} bytes; read fewer or smaller files`);
    }
    entries.push({ ...header, content: await entry.bytes() });
  }
  return entries;
}
