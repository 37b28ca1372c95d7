/**
 * What `gc` would really delete when it removes a recorded path. Journal lines can be forged
 * (anyone who can write the state directory can append one), so a path is checked after `.` and
 * `..` are resolved and the symlinks of its parent are followed, never as written. The last
 * component is not followed: removing a symlink unlinks it and never touches its target.
 *
 * @module
 */

import { normalizeAbsolute } from "./host_paths.ts";

/** A recorded path as the kernel would see it. */
export interface RemovalTarget {
  /** The real path of the parent directory, `/` + `name` joined: what a removal deletes. */
  readonly path: string;
  /** The real path of the parent directory. */
  readonly parent: string;
  /** The last component (never empty, `.` or `..`). */
  readonly name: string;
}

function absolute(path: string): string {
  // A relative --state-dir gives relative recorded paths: they are relative to the working
  // directory, as they were for the run.
  return normalizeAbsolute(path.startsWith("/") ? path : `${Deno.cwd()}/${path}`);
}

/**
 * Resolves `path` for removal: against the working directory when relative, `.`, `..` and
 * repeated slashes lexically, then the parent's symlinks. Undefined when the parent does not
 * exist (so neither does the path). Throws for an empty path or `/`.
 */
export async function removalTarget(path: string): Promise<RemovalTarget | undefined> {
  if (path === "") throw new Error("the path is empty");
  const lexical = absolute(path);
  if (lexical === "/") throw new Error(`"${path}" is the root directory`);
  const cut = lexical.lastIndexOf("/");
  const name = lexical.slice(cut + 1);
  let parent: string;
  try {
    parent = await Deno.realPath(lexical.slice(0, cut) || "/");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  return { path: parent === "/" ? `/${name}` : `${parent}/${name}`, parent, name };
}

/** The real path of `dir`, or `dir` made absolute and normalised when it does not exist. */
export async function realDir(dir: string): Promise<string> {
  try {
    return await Deno.realPath(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return absolute(dir);
    throw error;
  }
}
