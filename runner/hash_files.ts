/**
 * `hashFiles(...globs)` for pipeline code, done by the runner (pipeline code cannot be trusted
 * to confine its own reads): SHA-256 over the files of the pipeline's directory that match,
 * in sorted path order, each as its path, its length and its bytes, so renaming or moving
 * content changes the hash. A match whose real path leaves the directory is refused, as
 * every host read of pipeline code is; symlinked directories are not descended into.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { compileExcludes } from "../drivers/archive/glob.ts";
import { inside } from "./host_paths.ts";

/** What {@link hashPipelineFiles} found. */
export interface FilesHash {
  /** SHA-256, 64 lowercase hex digits (of no input when nothing matched). */
  readonly hash: string;
  /** The matched paths, relative to the directory, sorted. */
  readonly files: readonly string[];
}

/** The SHA-256 of no input: what `hashFiles` returns when nothing matches. */
export const EMPTY_FILES_HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * Hashes the files under `baseDir` matching `patterns` (relative globs: `*` and `?` within
 * a path segment, `**` across segments), leaving out `skipDir` (the state directory) when
 * it lies inside.
 */
export async function hashPipelineFiles(
  baseDir: string,
  patterns: readonly string[],
  skipDir?: string,
): Promise<FilesHash> {
  const root = await Deno.realPath(baseDir);
  const realSkip = skipDir === undefined
    ? undefined
    : await Deno.realPath(skipDir).catch(() => undefined);
  // Anchored patterns: `package-lock.json` is the one beside the pipeline, not one at any depth.
  const matcher = compileExcludes(patterns.map((pattern) => `/${pattern.replace(/^\.\//, "")}`));
  const found = new Set<string>();
  for (const start of new Set(patterns.map(staticPrefix))) {
    await walk(root, start, (path) => matcher.excludes(path, false), found, realSkip);
  }
  const files = [...found].sort();
  const hash = createHash("sha256");
  for (const path of files) {
    const real = await Deno.realPath(`${root}/${path}`);
    if (!inside(root, real)) throw outside(path, real);
    const bytes = await Deno.readFile(real);
    hash.update(`${path}\0${bytes.byteLength}\0`);
    hash.update(bytes);
  }
  return { hash: hash.digest("hex"), files };
}

function outside(path: string, real: string): Error {
  return new Error(
    `hashFiles: ${path} leads outside the pipeline's directory (to ${real}); refusing to read it`,
  );
}

/** The directory part of a pattern before its first wildcard (`""`: the root). */
function staticPrefix(pattern: string): string {
  const segments = pattern.replace(/^\.\//, "").split("/");
  const fixed: string[] = [];
  for (const segment of segments.slice(0, -1)) {
    if (/[*?]/.test(segment)) break;
    fixed.push(segment);
  }
  return fixed.filter((segment) => segment !== "" && segment !== ".").join("/");
}

async function walk(
  root: string,
  relative: string,
  matches: (path: string) => boolean,
  found: Set<string>,
  skip: string | undefined,
): Promise<void> {
  const dir = relative === "" ? root : `${root}/${relative}`;
  if (dir === skip) return;
  let entries: Deno.DirEntry[];
  try {
    const info = await Deno.lstat(dir);
    if (info.isSymlink) {
      // A pattern's fixed directory part that is a link: refused when it leads outside.
      const real = await Deno.realPath(dir).catch(() => undefined);
      if (real !== undefined && !inside(root, real)) throw outside(relative, real);
      return;
    }
    if (!info.isDirectory) return;
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) return;
    throw error;
  }
  for (const entry of entries) {
    const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
    if (entry.isDirectory) {
      await walk(root, path, matches, found, skip);
    } else if (entry.isFile && matches(path)) {
      found.add(path);
    } else if (entry.isSymlink && matches(path)) {
      const real = await Deno.realPath(`${root}/${path}`).catch(() => undefined);
      if (real === undefined) continue; // a dangling link
      if (!inside(root, real)) throw outside(path, real);
      if ((await Deno.stat(real)).isFile) found.add(path); // not a link to a directory
    }
  }
}
