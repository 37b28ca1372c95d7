/**
 * Extracts a tar stream into a host directory without ever writing outside it:
 * absolute paths and `..` are refused, nothing is written through a symlink that
 * leads outside, and symlinks pointing outside are refused unless allowed. A
 * symlink's target is judged as the kernel resolves it (from the link's real
 * directory, through the symlinks that exist), and every symlink made is checked
 * again once the stream ends, since a later entry can replace one it goes through.
 *
 * @module
 */

import { ArchivePathError, isInside, joinPath, normalizeRelative } from "./paths.ts";
import { readTar, type TarReadEntry } from "./tar_reader.ts";
import { TarError } from "./tar_format.ts";

/** Options for {@link extractTar}. */
export interface ExtractOptions {
  /** Create symlinks whose target lies outside the destination (default false: refused). */
  readonly allowEscapingSymlinks?: boolean;
  /**
   * Creates a symlink (default `Deno.symlink`, which needs unscoped read and write
   * permissions; a caller holding narrower ones can supply another way).
   */
  readonly symlink?: (target: string, path: string) => Promise<void>;
  /**
   * Called with the real path each entry would create or change (symlinks in its
   * directory resolved) before anything is written for it; a returned message
   * refuses the entry with an {@link ArchivePathError} (reason `refused`).
   */
  readonly refuse?: (realPath: string) => string | undefined;
}

/** What an extraction created. */
export interface ExtractSummary {
  /** Regular files (and hard links) written. */
  readonly files: number;
  /** Directories created or updated. */
  readonly directories: number;
  /** Symlinks created. */
  readonly symlinks: number;
}

/**
 * Extracts `stream` into `destination` (created when missing). Existing files are
 * replaced. Rejects with an {@link ArchivePathError} (reason `escape`) for an entry
 * that would land outside the destination, or a {@link TarError} for a malformed stream.
 */
export async function extractTar(
  stream: ReadableStream<Uint8Array>,
  destination: string,
  options: ExtractOptions = {},
): Promise<ExtractSummary> {
  await Deno.mkdir(destination, { recursive: true });
  const extractor = new Extractor(await Deno.realPath(destination), options);
  for await (const entry of readTar(stream)) await extractor.add(entry);
  await extractor.finish();
  return extractor.summary();
}

class Extractor {
  readonly #root: string;
  readonly #options: ExtractOptions;
  readonly #safeDirs = new Set<string>([""]);
  /** Symlinks made, checked again at the end. */
  readonly #links: string[] = [];
  readonly #directoryMeta: { path: string; mode: number; mtime: number }[] = [];
  #files = 0;
  #directories = 0;
  #symlinks = 0;

  constructor(root: string, options: ExtractOptions) {
    this.#root = root;
    this.#options = options;
  }

  async add(entry: TarReadEntry): Promise<void> {
    const path = normalizeRelative(entry.path);
    if (path === "") return;
    const full = joinPath(this.#root, path);
    if (this.#options.refuse !== undefined) {
      const real = await realPathOfExisting(full);
      const message = this.#options.refuse(real);
      if (message !== undefined) throw new ArchivePathError("refused", entry.path, message);
    }
    switch (entry.type) {
      case "directory":
        await this.#ensureDir(path);
        this.#directoryMeta.push({ path: full, mode: entry.mode, mtime: entry.mtime });
        this.#directories++;
        return;
      case "file":
        await this.#ensureDir(parentOf(path));
        await this.#clear(full, path);
        await writeBody(full, entry);
        await Deno.chmod(full, entry.mode & 0o7777);
        await Deno.utime(full, entry.mtime, entry.mtime);
        this.#files++;
        return;
      case "symlink": {
        const target = entry.linkTarget ?? "";
        await this.#ensureDir(parentOf(path));
        if (!this.#options.allowEscapingSymlinks && !(await this.#containedLink(path, target))) {
          throw new ArchivePathError(
            "escape",
            entry.path,
            `symlink "${entry.path}" -> "${target}" points outside the destination`,
          );
        }
        await this.#clear(full, path);
        await (this.#options.symlink ?? denoSymlink)(target, full);
        this.#links.push(path);
        this.#forgetSafeDirs(path);
        this.#symlinks++;
        return;
      }
      case "hardlink": {
        const target = normalizeRelative(entry.linkTarget ?? "");
        const targetFull = joinPath(this.#root, target);
        const info = await Deno.lstat(targetFull).catch(() => undefined);
        if (!info?.isFile || !isInside(this.#root, await Deno.realPath(parentOf(targetFull)))) {
          throw new TarError(
            `hard link "${entry.path}" -> "${entry.linkTarget}" has no file to link to`,
          );
        }
        await this.#ensureDir(parentOf(path));
        await this.#clear(full, path);
        await Deno.link(targetFull, full);
        this.#files++;
        return;
      }
    }
  }

  async finish(): Promise<void> {
    if (!this.#options.allowEscapingSymlinks) {
      for (const path of this.#links) {
        const full = joinPath(this.#root, path);
        const info = await Deno.lstat(full).catch(() => undefined);
        if (!info?.isSymlink) continue;
        if (!(await this.#containedLink(path, await Deno.readLink(full)))) {
          await Deno.remove(full);
          throw new ArchivePathError(
            "escape",
            path,
            `symlink "${path}" points outside the destination after a later entry replaced a link it goes through`,
          );
        }
      }
    }
    for (const meta of this.#directoryMeta.reverse()) {
      await Deno.chmod(meta.path, meta.mode & 0o7777);
      await Deno.utime(meta.path, meta.mtime, meta.mtime);
    }
  }

  summary(): ExtractSummary {
    return { files: this.#files, directories: this.#directories, symlinks: this.#symlinks };
  }

  /** Makes sure `path` (relative) is a directory inside the root, creating it when missing. */
  async #ensureDir(path: string): Promise<void> {
    if (this.#safeDirs.has(path)) return;
    await this.#ensureDir(parentOf(path));
    const full = joinPath(this.#root, path);
    const info = await Deno.lstat(full).catch(() => undefined);
    if (info === undefined) {
      await Deno.mkdir(full, { mode: 0o755 });
    } else if (info.isSymlink) {
      const real = await Deno.realPath(full).catch(() => "");
      const realInfo = real ? await Deno.stat(real) : undefined;
      if (!isInside(this.#root, real) || !realInfo?.isDirectory) {
        throw new ArchivePathError(
          "escape",
          path,
          `"${path}" is a symlink that does not lead to a directory inside the destination`,
        );
      }
    } else if (!info.isDirectory) {
      throw new TarError(`cannot extract below "${path}": it is not a directory`);
    }
    this.#safeDirs.add(path);
  }

  /** Removes a file or symlink at `full` so it is replaced rather than written through. */
  async #clear(full: string, path: string): Promise<void> {
    const info = await Deno.lstat(full).catch(() => undefined);
    if (info === undefined) return;
    if (info.isDirectory) {
      throw new TarError(`cannot replace directory "${path}" with a non-directory entry`);
    }
    await Deno.remove(full);
  }

  #forgetSafeDirs(path: string): void {
    for (const dir of this.#safeDirs) {
      if (dir === path || dir.startsWith(`${path}/`)) this.#safeDirs.delete(dir);
    }
  }

  /**
   * Whether `target`, as the kernel would resolve it from the real directory of the
   * link at `path` (which exists), stays inside the root. The part of the target up
   * to its last `..` must exist: `..` after a missing name could climb out of the
   * root once a later entry makes that name a symlink.
   */
  async #containedLink(path: string, target: string): Promise<boolean> {
    if (target === "" || target.includes("\0")) return false;
    const parent = await Deno.realPath(joinPath(this.#root, parentOf(path)));
    const absolute = target.startsWith("/") ? target : `${parent}/${target}`;
    const parts = absolute.split("/");
    const lastUp = parts.lastIndexOf("..");
    let resolved: string;
    try {
      if (lastUp === -1) {
        resolved = await realPathOfExisting(normalizeAbsolute(absolute));
      } else {
        const climbed = await Deno.realPath(parts.slice(0, lastUp + 1).join("/") || "/");
        resolved = await realPathOfExisting(
          normalizeAbsolute([climbed, ...parts.slice(lastUp + 1)].join("/")),
        );
      }
    } catch {
      return false;
    }
    return isInside(this.#root, resolved);
  }
}

async function denoSymlink(target: string, path: string): Promise<void> {
  try {
    await Deno.symlink(target, path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) throw error;
    throw new TarError(
      `cannot create the symlink "${path}": Deno allows symlinks only with unscoped --allow-read and --allow-write`,
    );
  }
}

async function writeBody(path: string, entry: TarReadEntry): Promise<void> {
  using file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  for await (const chunk of entry.body()) {
    let offset = 0;
    while (offset < chunk.length) offset += await file.write(chunk.subarray(offset));
  }
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash === -1 ? "" : path.slice(0, slash);
}

function normalizeAbsolute(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}

/** The real path of the absolute `path`: symlinks resolved in the part that exists. */
async function realPathOfExisting(path: string): Promise<string> {
  const rest: string[] = [];
  let existing = path;
  while (true) {
    try {
      return normalizeAbsolute([await Deno.realPath(existing), ...rest.reverse()].join("/"));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound) || existing === "/") throw error;
      rest.push(existing.slice(existing.lastIndexOf("/") + 1));
      existing = existing.slice(0, existing.lastIndexOf("/")) || "/";
    }
  }
}
