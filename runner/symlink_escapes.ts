/**
 * Symlinks that would carry pipeline code out of the directories it may read
 * (or write). Deno checks a permission against the path as written (after lexical
 * `.`/`..` normalisation), then opens it, following symlinks: with read of `/d`, a
 * committed `/d/root -> /` reads the whole host as `/d/root/etc/shadow`. The runner
 * walks the granted directories before starting the pipeline and denies (with
 * `--deny-read`/`--deny-write`) every symlink whose real path leaves them, and, to
 * the fixed point, every directory symlink inside them whose target contains a
 * denied one (an alias such as `b -> .` would otherwise reach `b/root/...`).
 *
 * @module
 */

import { normalizeAbsolute } from "./host_paths.ts";

/** Where a symlink found in a walk points. */
interface FoundLink {
  /** The path pipeline code would write (under the granted root as given). */
  readonly path: string;
  /** The link's own location with every directory above it resolved. */
  readonly location: string;
  /** Its target's real path, or undefined when the target does not exist. */
  readonly target: string | undefined;
  /** Whether the target is a directory. */
  readonly isDirectory: boolean;
}

function inside(root: string, path: string): boolean {
  return root === "/" || path === root || path.startsWith(root + "/");
}

async function realOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await Deno.realPath(path);
  } catch {
    return undefined;
  }
}

/** How many directories are read at once. */
const WALK_CONCURRENCY = 16;

/** Walks `realRoot` (never following symlinks) and reports each symlink under it. */
async function walkLinks(root: string, realRoot: string, found: FoundLink[]): Promise<number> {
  let entries = 0;
  let level: string[] = [""];
  while (level.length > 0) {
    const next: string[] = [];
    // One level at a time, a bounded number of its directories read at once (an
    // unbounded fan-out runs out of file descriptors, and a skipped directory could
    // hide an escape).
    const queue = [...level];
    const readOne = async (relative: string) => {
      let listing: Deno.DirEntry[];
      try {
        listing = await Array.fromAsync(Deno.readDir(realRoot + relative));
      } catch (error) {
        // Gone, or not listable by this user (nor by pipeline code, which runs as it).
        if (
          error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied
        ) {
          return;
        }
        throw error;
      }
      for (const entry of listing) {
        entries++;
        const child = `${relative}/${entry.name}`;
        if (entry.isSymlink) {
          const target = await realOrUndefined(realRoot + child);
          const isDirectory = target !== undefined &&
            (await Deno.stat(target).catch(() => undefined))?.isDirectory === true;
          found.push({
            path: normalizeAbsolute(root + child),
            location: normalizeAbsolute(realRoot + child),
            target,
            isDirectory,
          });
        } else if (entry.isDirectory) {
          next.push(child);
        }
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(WALK_CONCURRENCY, queue.length) }, async () => {
        for (let relative = queue.shift(); relative !== undefined; relative = queue.shift()) {
          await readOne(relative);
        }
      }),
    );
    level = next;
  }
  return entries;
}

/** What {@link escapingSymlinks} found. */
export interface SymlinkScan {
  /** The paths to deny, as pipeline code would write them (sorted, no duplicates). */
  readonly deny: readonly string[];
  /** How many directory entries were walked. */
  readonly entries: number;
}

/**
 * Walks `roots` (absolute paths of granted files and directories) and returns the
 * symlinks under them to deny: those whose real path leaves every root (or whose
 * target does not exist: where it would lead cannot be known), then, until nothing
 * changes, the directory symlinks whose target is an ancestor of a denied link.
 * A root of `/` grants everything: nothing is walked and nothing denied.
 */
export async function escapingSymlinks(roots: readonly string[]): Promise<SymlinkScan> {
  const lexical = [...new Set(roots.map(normalizeAbsolute))];
  if (lexical.includes("/")) return { deny: [], entries: 0 };
  const pairs: { root: string; real: string }[] = [];
  for (const root of lexical) {
    const real = await realOrUndefined(root);
    if (real !== undefined) pairs.push({ root, real: normalizeAbsolute(real) });
  }
  const realRoots = pairs.map((pair) => pair.real);
  const allowed = (path: string) => realRoots.some((root) => inside(root, path));
  const found: FoundLink[] = [];
  let entries = 0;
  for (const { root, real } of pairs) {
    if ((await Deno.stat(real).catch(() => undefined))?.isDirectory) {
      entries += await walkLinks(root, real, found);
    }
  }
  const denied = new Map<string, FoundLink>();
  for (const link of found) {
    if (link.target === undefined || !allowed(link.target)) denied.set(link.path, link);
  }
  let changed = denied.size > 0;
  while (changed) {
    changed = false;
    for (const link of found) {
      if (denied.has(link.path) || !link.isDirectory || link.target === undefined) continue;
      const target = link.target;
      if ([...denied.values()].some((bad) => inside(target, bad.location))) {
        denied.set(link.path, link);
        changed = true;
      }
    }
  }
  return { deny: [...denied.keys()].sort(), entries };
}
