/**
 * Native caches on disk: one directory per cache under the namespace's cache root,
 * each with a `<dir>.meta.json` sidecar holding its logical name and when a run last
 * used it (what `pocketci gc` goes by).
 *
 * @module
 */

import { isInside, joinPath } from "../archive/paths.ts";
import { DriverError, type ResourceRecord } from "../contract.ts";

/** What the sidecar of a cache holds. */
export interface CacheMeta {
  /** The logical name the pipeline gave. */
  readonly name: string;
  /** When a run last opened the cache, as an ISO date. */
  readonly lastUsedAt: string;
  /** The run that last opened it. */
  readonly runId: string;
}

/** Records that run `runId` uses the cache in `dir` now. */
export async function touchCache(dir: string, name: string, runId: string): Promise<void> {
  const meta: CacheMeta = { name, lastUsedAt: new Date().toISOString(), runId };
  await Deno.writeTextFile(`${dir}.meta.json`, JSON.stringify(meta) + "\n");
}

/** Every cache under `root`, as resource records (createdAt = last used). */
export async function listCaches(root: string, namespace: string): Promise<ResourceRecord[]> {
  const records: ResourceRecord[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(root));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  for (const entry of entries) {
    if (!entry.isDirectory) continue;
    const dir = joinPath(root, entry.name);
    const meta = await readMeta(dir);
    const lastUsedAt = meta?.lastUsedAt ??
      ((await Deno.stat(dir)).mtime ?? new Date(0)).toISOString();
    records.push({
      kind: "cache",
      id: dir,
      driver: "native",
      namespace,
      runId: meta?.runId,
      createdAt: lastUsedAt,
      detail: { name: meta?.name ?? entry.name, lastUsedAt },
    });
  }
  return records.sort((a, b) => a.id.localeCompare(b.id));
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
    if (typeof parsed?.name === "string" && typeof parsed?.lastUsedAt === "string") {
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
