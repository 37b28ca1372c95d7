/**
 * Confines the host paths pipeline code names (`volume({ from })`, `exportTo`) to
 * the pipeline's directory or to directories the user granted: the runner acts for
 * untrusted code and must not widen its reach.
 *
 * @module
 */

/** Which host directories pipeline code may read from and write to. */
export interface HostPathPolicy {
  /** The pipeline file's directory (relative paths resolve against it; always allowed). */
  readonly baseDir: string;
  /** Extra directories granted with `--allow-read` (`["/"]` for all). */
  readonly readRoots: readonly string[];
  /** Extra directories granted with `--allow-write` (`["/"]` for all). */
  readonly writeRoots: readonly string[];
  /**
   * Real paths of the pipeline's own source files (the import scan's): `exportTo`
   * does not overwrite them unless `--allow-write` names one exactly.
   */
  readonly protectedFiles?: readonly string[];
}

/** Version-control metadata directories: `exportTo` never writes into one unless granted by name. */
export const VCS_DIRS: readonly string[] = [".git", ".hg", ".svn"];

/** Normalizes an absolute path lexically (`.`, `..`, repeated slashes). */
export function normalizeAbsolute(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return "/" + parts.join("/");
}

/** Resolves `path` against `baseDir`. */
export function resolveAgainst(baseDir: string, path: string): string {
  return normalizeAbsolute(path.startsWith("/") ? path : `${baseDir}/${path}`);
}

/** True when the normalized absolute `path` is `root` or below it. */
export function inside(root: string, path: string): boolean {
  const normalizedRoot = normalizeAbsolute(root);
  return normalizedRoot === "/" || path === normalizedRoot || path.startsWith(normalizedRoot + "/");
}

/**
 * The real path of the absolute `path`, following symlinks in the part that exists
 * (the missing rest is appended as written).
 */
export async function realPathOfExisting(path: string): Promise<string> {
  let existing = path;
  const rest: string[] = [];
  while (true) {
    try {
      const real = await Deno.realPath(existing);
      return normalizeAbsolute([real, ...rest.reverse()].join("/"));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound) || existing === "/") throw error;
      rest.push(existing.slice(existing.lastIndexOf("/") + 1));
      existing = existing.slice(0, existing.lastIndexOf("/")) || "/";
    }
  }
}

/**
 * Resolves a host path for reading (`"read"`) or writing (`"write"`) and checks that
 * it lies, symlinks followed, inside the pipeline's directory or a granted one.
 */
export async function confineHostPath(
  policy: HostPathPolicy,
  path: string,
  access: "read" | "write",
): Promise<string> {
  if (typeof path !== "string" || path === "") throw new Error("a host path must not be empty");
  const resolved = resolveAgainst(policy.baseDir, path);
  const flag = access === "read" ? "--allow-read" : "--allow-write";
  const denied = () =>
    new Error(
      `host path "${path}" is outside the pipeline's directory ${policy.baseDir}; grant it with \`pocketci run ${flag}=${resolved}\``,
    );
  const roots = [policy.baseDir, ...(access === "read" ? policy.readRoots : policy.writeRoots)]
    .map(normalizeAbsolute);
  const realRoots = await Promise.all(
    roots.map((root) => realPathOfExisting(root).catch(() => root)),
  );
  // A path outside every root as written is refused before anything follows its
  // symlinks (the runner may not even read there).
  if (![...roots, ...realRoots].some((root) => inside(root, resolved))) throw denied();
  let real: string;
  try {
    real = await realPathOfExisting(resolved);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw denied();
    throw error;
  }
  if (realRoots.some((root) => inside(root, real))) return resolved;
  throw denied();
}

/**
 * The check `exportTo` applies to the real path of everything it would write: a
 * path inside version-control metadata (`.git`, `.hg`, `.svn` at any depth: git
 * runs hooks from there) or one of the pipeline's own source files is refused
 * unless `--allow-write` names it (a grant of that directory or below it, or of the
 * file itself; `--allow-write` for everything or for a parent directory does not).
 * Returns a one-line refusal, or undefined when the write is allowed.
 */
export async function exportWriteCheck(
  policy: HostPathPolicy,
): Promise<(realPath: string) => string | undefined> {
  const grants = await Promise.all(
    policy.writeRoots.map(normalizeAbsolute).filter((root) => root !== "/").map((root) =>
      realPathOfExisting(root).catch(() => root)
    ),
  );
  const sources = new Set(policy.protectedFiles ?? []);
  return (real) => {
    const parts = real.split("/");
    const vcs = parts.findIndex((part) => VCS_DIRS.includes(part));
    if (vcs !== -1) {
      const metadata = parts.slice(0, vcs + 1).join("/");
      if (!grants.some((grant) => inside(metadata, grant) && inside(grant, real))) {
        return `exportTo refuses to write ${real}: it is inside version-control metadata (${
          parts[vcs]
        }), which tools run code from; name it with \`pocketci run --allow-write=${metadata}\` to allow it`;
      }
    }
    if (sources.has(real) && !grants.includes(real)) {
      return `exportTo refuses to overwrite ${real}: it is one of the pipeline's own source files; name it with \`pocketci run --allow-write=${real}\` to allow it`;
    }
    return undefined;
  };
}
