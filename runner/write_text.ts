/**
 * Synchronous UTF-8 writes of text through one reused buffer, so streaming hundreds of
 * megabytes of output allocates no byte array per write.
 *
 * @module
 */

/** Something that takes bytes synchronously, like `Deno.stdout` or a `Deno.FsFile`. */
export interface SyncWriter {
  /** Writes some of `bytes`; returns how many. */
  writeSync(bytes: Uint8Array): number;
}

const encoder = new TextEncoder();
const buffer = new Uint8Array(64 * 1024);

/** Writes all of `text` to `file` as UTF-8. */
export function writeTextSync(file: SyncWriter, text: string): void {
  while (text !== "") {
    const { read, written } = encoder.encodeInto(text, buffer);
    let offset = 0;
    while (offset < written) offset += file.writeSync(buffer.subarray(offset, written));
    text = read === text.length ? "" : text.slice(read);
  }
}
