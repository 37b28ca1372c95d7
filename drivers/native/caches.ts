/**
 * Native caches on disk: one directory per cache under the namespace's cache root,
 * each with a `<dir>.meta.json` sidecar holding its logical name and when a run last
 * used it (what `pocketci gc` goes by).
 *
 * @module
 */

import { extractTar, packDirectory } from "../archive/mod.ts";
import { isInside, joinPath } from "../archive/paths.ts";
import {
  type CacheEntry,
  type CacheOpening,
  DriverError,
  type ResourceRecord,
} from "../contract.ts";
import { createSymlink, safeName } from "./layout.ts";

/** What the sidecar of a cache holds. */
export interface CacheMeta {
  /** The logical name the pipeline gave. */
  readonly name: string;
  /** The cache's key (absent: the unkeyed cache). */
  readonly key?: string;
  /** When a run last opened the cache, as an ISO date. */
  readonly lastUsedAt: string;
  /** The run that last opened it. */
  readonly runId: string;
}

/** Records that run `runId` uses the cache in `dir` now. */
export async function touchCache(
  dir: string,
  name: string,
  runId: string,
  key?: string,
): Promise<void> {
  const meta: CacheMeta = {
    name,
    ...(key === undefined ? {} : { key }),
    lastUsedAt: new Date().toISOString(),
    runId,
  };
  await Deno.writeTextFile(`${dir}.meta.json`, JSON.stringify(meta) + "\n");
}

/**
 * The directory of cache `name` (+ `key`) under `root`. Unkeyed caches keep their plain
 * name; keyed ones start with `@`, which no cache name can, so the two never collide.
 */
export async function cacheDir(root: string, name: string, key?: string): Promise<string> {
  return joinPath(
    root,
    key === undefined ? await safeName(name) : `@${await safeName(`${name}@${key}`)}`,
  );
}

/**
 * Creates the cache directory `dir` unless it exists; a new one is filled with a copy of
 * `seed` (another cache directory, left unchanged) first, in a temporary directory renamed
 * into place, so no run ever sees a half-copied cache.
 */
export async function openCacheDir(
  root: string,
  dir: string,
  seed: string | undefined,
): Promise<CacheOpening> {
  await Deno.mkdir(root, { recursive: true });
  if (seed === undefined) {
    try {
      await Deno.mkdir(dir);
      return "created";
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) return "existing";
      throw error;
    }
  }
  if (await Deno.lstat(dir).then(() => true, () => false)) return "existing";
  const temporary = joinPath(root, `.copy-${crypto.randomUUID()}`);
  try {
    await Deno.mkdir(temporary);
    await extractTar(await packDirectory(seed), temporary, { symlink: createSymlink });
    try {
      await Deno.rename(temporary, dir);
    } catch (error) {
      // Another run created it meanwhile (rename onto a non-empty directory fails).
      if (await Deno.lstat(dir).then(() => true, () => false)) return "existing";
      throw error;
    }
    return "seeded";
  } finally {
    await Deno.remove(temporary, { recursive: true }).catch(() => {});
  }
}

/** The caches under `root` whose logical name is `name` (every key), for restoring. */
export async function cachesNamed(root: string, name: string): Promise<CacheEntry[]> {
  const found = await cacheDirs(root);
  return found.filter(({ meta }) => meta?.name === name).map(({ dir, meta, lastUsedAt }) => ({
    handle: {
      name,
      kind: "cache" as const,
      id: dir,
      ...(meta?.key === undefined ? {} : { key: meta.key }),
    },
    lastUsedAt,
  }));
}

/** Every cache under `root`, as resource records (createdAt = last used). */
export async function listCaches(root: string, namespace: string): Promise<ResourceRecord[]> {
  const records: ResourceRecord[] = (await cacheDirs(root)).map(({ dir, meta, lastUsedAt }) => ({
    kind: "cache",
    id: dir,
    driver: "native",
    namespace,
    runId: meta?.runId,
    createdAt: lastUsedAt,
    detail: {
      name: meta?.name ?? dir.slice(dir.lastIndexOf("/") + 1),
      lastUsedAt,
      ...(meta?.key === undefined ? {} : { key: meta.key }),
    },
  }));
  return records.sort((a, b) => a.id.localeCompare(b.id));
}

interface CacheDir {
  readonly dir: string;
  readonly meta: CacheMeta | undefined;
  readonly lastUsedAt: string;
}

async function cacheDirs(root: string): Promise<CacheDir[]> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(root));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  const found: CacheDir[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory) continue;
    const dir = joinPath(root, entry.name);
    const meta = await readMeta(dir);
    const stat = meta === undefined ? await Deno.stat(dir).catch(() => undefined) : undefined;
    if (meta === undefined && stat === undefined) continue; // removed meanwhile
    const lastUsedAt = meta?.lastUsedAt ?? (stat?.mtime ?? new Date(0)).toISOString();
    found.push({ dir, meta, lastUsedAt });
  }
  return found;
}

/**
 * The bytes the files of each cache directory hold (symlinks not followed), for the caches
 * that lie right under `root`; others are left out.
 */
export async function cacheSizes(
  root: string,
  caches: readonly ResourceRecord[],
): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const cache of caches) {
    if (!isInside(root, cache.id) || cache.id.slice(root.length + 1).includes("/")) continue;
    const size = await directorySize(cache.id).catch(() => undefined);
    if (size !== undefined) sizes.set(cache.id, size);
  }
  return sizes;
}

async function directorySize(dir: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = joinPath(dir, entry.name);
    if (entry.isDirectory) total += await directorySize(path);
    else if (entry.isFile) total += (await Deno.lstat(path)).size;
  }
  return total;
}

/** Removes one cache directory (and its sidecar) that must lie inside `root`. */
export async function removeCache(root: string, dir: string): Promise<void> {
  if (!isInside(root, dir) || dir === root || dir.slice(root.length + 1).includes("/")) {
    throw new DriverError(
      "invalid",
      `"${dir}" is not a cache of this namespace; refusing to remove it`,
    );
  }
  await Deno.remove(dir, { recursive: true }).catch(ignoreNotFound);
  await Deno.remove(`${dir}.meta.json`).catch(ignoreNotFound);
}

async function readMeta(dir: string): Promise<CacheMeta | undefined> {
  try {
    const parsed = JSON.parse(await Deno.readTextFile(`${dir}.meta.json`));
    if (
      typeof parsed?.name === "string" && typeof parsed?.lastUsedAt === "string" &&
      (parsed.key === undefined || typeof parsed.key === "string")
    ) {
      return parsed as CacheMeta;
    }
  } catch {
    // A missing or damaged sidecar: fall back to the directory itself.
  }
  return undefined;
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}
