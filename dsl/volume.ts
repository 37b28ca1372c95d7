/**
 * Volumes (live for the run) and caches (survive runs of the same namespace).
 *
 * @module
 */

import { currentHost, type VolumeInfo } from "./host.ts";
import type { CacheHit, CacheOptions, ExportOptions, VolumeOptions } from "./types.ts";
import {
  checkCacheOptions,
  checkFiles,
  checkHashPatterns,
  checkPath,
  checkPaths,
  checkVolumeName,
} from "./validate.ts";

/** A volume or cache: mount it into tasks, read and write its files, export it to the host. */
export class Volume {
  /** The logical name. */
  readonly name: string;
  /** Run-scoped volume or namespace-scoped cache. */
  readonly kind: "volume" | "cache";
  /** The runner's ID for it. */
  readonly id: string;
  /** Caches: the key it was opened with (undefined: the unkeyed cache). */
  readonly key?: string;
  /**
   * Caches: `exact` when the cache with this key existed, `restored` when it was new and
   * started as a copy of the cache named by {@link restoredKey}, `miss` when it started empty.
   */
  readonly hit?: CacheHit;
  /** Caches: the key whose contents were copied in (only when `hit` is `restored`). */
  readonly restoredKey?: string;

  /** Wraps a volume the runner created; use {@link volume} or {@link cache} instead. */
  constructor(info: VolumeInfo) {
    this.name = info.name;
    this.kind = info.kind;
    this.id = info.id;
    if (info.key !== undefined) this.key = info.key;
    if (info.hit !== undefined) this.hit = info.hit;
    if (info.restoredKey !== undefined) this.restoredKey = info.restoredKey;
    Object.freeze(this);
  }

  /** Reads regular files as text, keyed by their path in the volume; directories are read recursively. */
  readFiles(paths: readonly string[]): Promise<Record<string, string>> {
    return currentHost().readFiles(this.id, checkPaths("readFiles", paths));
  }

  /** Reads one file's bytes. */
  readFile(path: string): Promise<Uint8Array> {
    return currentHost().readFile(this.id, checkPath("readFile", path));
  }

  /** Writes files (text or bytes), creating parent directories. */
  writeFiles(files: Readonly<Record<string, string | Uint8Array>>): Promise<void> {
    return currentHost().writeFiles(this.id, checkFiles(files));
  }

  /**
   * Copies the volume's contents, or those of `options.path` inside it, into a host
   * directory (relative to the pipeline file's directory; it must lie inside that
   * directory or one granted with `--allow-write`).
   */
  exportTo(hostDir: string, options: ExportOptions = {}): Promise<void> {
    return currentHost().exportTo(
      this.id,
      checkPath("exportTo", hostDir),
      options.path === undefined ? undefined : checkPath("exportTo", options.path),
    );
  }
}

/** Creates a volume that lives for the run, optionally seeded from a host directory. */
export async function volume(name: string, options: VolumeOptions = {}): Promise<Volume> {
  const request = {
    name: checkVolumeName("volume", name),
    kind: "volume" as const,
    from: options.from === undefined ? undefined : checkPath("volume", options.from),
    exclude: options.exclude === undefined ? undefined : checkPaths("volume", options.exclude),
  };
  const info = await currentHost().createVolume(request);
  return new Volume(info);
}

/**
 * Opens a cache: a volume that survives runs of the same namespace until `pocketci gc`
 * removes it. With `key`, the cache used is `name` plus the key; when it does not exist yet,
 * the most recently used cache of the same name whose key starts with one of `restoreKeys`
 * (tried in order) is copied in as its start (that cache is left unchanged). The returned
 * cache tells what happened in `hit` and `restoredKey`.
 *
 * ```ts
 * const npm = await cache("npm", {
 *   key: ["npm", await hashFiles("package-lock.json")],
 *   restoreKeys: ["npm-"],
 * });
 * ```
 */
export async function cache(name: string, options: CacheOptions = {}): Promise<Volume> {
  checkVolumeName("cache", name);
  const keys = checkCacheOptions(name, options.key, options.restoreKeys);
  return new Volume(await currentHost().createVolume({ name, kind: "cache", ...keys }));
}

/**
 * SHA-256 (64 hex digits) over the files of the pipeline's directory matching the globs
 * (relative to that directory; `*`, `?`, `**`), in sorted path order, each file's path and
 * content hashed. Files whose real path leaves the directory are refused. When nothing
 * matches, the result is the hash of no files and the run log has a warning.
 */
export async function hashFiles(...patterns: string[]): Promise<string> {
  return await currentHost().hashFiles(checkHashPatterns(patterns));
}
