/**
 * Relative-path checks shared by packing, extraction and the drivers.
 *
 * @module
 */

/** A path that is absolute, escapes its root, or does not exist. */
export class ArchivePathError extends Error {
  /** Why the path was refused (`refused`: the caller's `refuse` check said no). */
  readonly reason: "escape" | "not_found" | "refused";
  /** The path as given. */
  readonly path: string;
  /** Creates a path error. */
  constructor(reason: "escape" | "not_found" | "refused", path: string, message: string) {
    super(message);
    this.name = "ArchivePathError";
    this.reason = reason;
    this.path = path;
  }
}

/**
 * Normalizes a slash-separated relative path (`./a//b/` → `a/b`, `.` → ``).
 * Absolute paths and any `..` segment are refused with an {@link ArchivePathError}.
 */
export function normalizeRelative(path: string): string {
  if (path.startsWith("/")) {
    throw new ArchivePathError("escape", path, `path "${path}" must be relative, not absolute`);
  }
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      throw new ArchivePathError("escape", path, `path "${path}" must not contain ".."`);
    }
    if (part.includes("\0")) {
      throw new ArchivePathError("escape", path, `path "${path}" contains a NUL byte`);
    }
    parts.push(part);
  }
  return parts.join("/");
}

/** Joins a host directory and a normalized relative path. */
export function joinPath(root: string, relative: string): string {
  if (relative === "") return root;
  return root.endsWith("/") ? `${root}${relative}` : `${root}/${relative}`;
}

/** True when `path` is `root` or lies below it (both absolute and normalized). */
export function isInside(root: string, path: string): boolean {
  const base = root.endsWith("/") ? root : `${root}/`;
  return path === root || path.startsWith(base);
}
