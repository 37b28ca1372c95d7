/**
 * Packs a host directory into a tar stream: binary-safe, symlinks kept as symlinks,
 * permission bits and modification times kept, exclude patterns applied.
 *
 * @module
 */

import { compileExcludes, type ExcludeMatcher } from "./glob.ts";
import { ArchivePathError, isInside, joinPath, normalizeRelative } from "./paths.ts";
import { createTarStream, type TarWriteEntry } from "./tar_writer.ts";

/** Options for {@link packDirectory}. */
export interface PackOptions {
  /** Exclude patterns (see `glob.ts`); an excluded directory is skipped entirely. */
  readonly exclude?: readonly string[];
  /**
   * Only these paths (relative to the root; directories recursively). Entries are
   * named relative to the root either way. A missing path is an {@link ArchivePathError}.
   */
  readonly paths?: readonly string[];
}

/**
 * A tar stream of `root`'s contents, entries named relative to `root` (no `./`
 * prefix). The directory is walked lazily as the stream is read. Sockets, FIFOs and
 * devices are skipped.
 */
export async function packDirectory(
  root: string,
  options: PackOptions = {},
): Promise<ReadableStream<Uint8Array>> {
  const info = await Deno.stat(root).catch(() => undefined);
  if (!info?.isDirectory) {
    throw new ArchivePathError("not_found", root, `directory "${root}" does not exist`);
  }
  const matcher = compileExcludes(options.exclude ?? []);
  const starts: string[] = [];
  const realRoot = await Deno.realPath(root);
  for (const path of options.paths ?? [""]) {
    const relative = normalizeRelative(path);
    if (relative !== "") {
      if ((await lstatOrUndefined(joinPath(root, relative))) === undefined) {
        throw new ArchivePathError("not_found", path, `path "${path}" does not exist`);
      }
      const parent = relative.includes("/") ? relative.slice(0, relative.lastIndexOf("/")) : "";
      if (!isInside(realRoot, await Deno.realPath(joinPath(root, parent)))) {
        throw new ArchivePathError(
          "escape",
          path,
          `path "${path}" leads outside the directory through a symlink`,
        );
      }
    }
    starts.push(relative);
  }
  return createTarStream(walkAll(root, starts, matcher));
}

async function* walkAll(
  root: string,
  starts: readonly string[],
  matcher: ExcludeMatcher,
): AsyncGenerator<TarWriteEntry> {
  const seen = new Set<string>();
  for (const start of starts) {
    for await (const entry of walk(root, start, matcher)) {
      if (seen.has(entry.path)) continue;
      seen.add(entry.path);
      yield entry;
    }
  }
}

async function* walk(
  root: string,
  relative: string,
  matcher: ExcludeMatcher,
): AsyncGenerator<TarWriteEntry> {
  const full = joinPath(root, relative);
  const info = await lstatOrUndefined(full);
  if (info === undefined) return;
  const mtime = Math.floor((info.mtime?.getTime() ?? 0) / 1000);
  const mode = (info.mode ?? 0o644) & 0o7777;
  if (relative !== "" && matcher.excludes(relative, info.isDirectory)) return;
  if (info.isSymlink) {
    yield {
      path: relative,
      type: "symlink",
      mode,
      size: 0,
      mtime,
      linkTarget: await Deno.readLink(full),
    };
  } else if (info.isFile) {
    yield {
      path: relative,
      type: "file",
      mode,
      size: info.size,
      mtime,
      body: () => readFile(full),
    };
  } else if (info.isDirectory) {
    if (relative !== "") yield { path: relative, type: "directory", mode, size: 0, mtime };
    const names: string[] = [];
    for await (const child of Deno.readDir(full)) names.push(child.name);
    names.sort();
    for (const name of names) {
      yield* walk(root, relative === "" ? name : `${relative}/${name}`, matcher);
    }
  }
}

async function* readFile(path: string): AsyncGenerator<Uint8Array> {
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(64 * 1024);
  while (true) {
    const count = await file.read(buffer);
    if (count === null) return;
    yield buffer.slice(0, count);
  }
}

async function lstatOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw error;
  }
}
