/**
 * Opening a keyed cache: the exact key when it exists, otherwise a new cache that starts as
 * a copy of the most recently used cache of the same name whose key starts with one of the
 * restore keys (tried in order), as GitHub Actions' `actions/cache` restores.
 *
 * @module
 */

import type { CacheEntry, Driver, VolumeHandle } from "../drivers/contract.ts";
import type { CacheHit } from "../dsl/types.ts";

/** A cache to open. */
export interface CacheRequest {
  /** The logical name. */
  readonly name: string;
  /** The joined key (absent: the unkeyed cache). */
  readonly key?: string;
  /** Joined key prefixes, in order. */
  readonly restoreKeys?: readonly string[];
}

/** What opening a cache did. */
export interface CacheOutcome {
  /** The opened cache. */
  readonly handle: VolumeHandle;
  /** Exact key found, restored from another key, or started empty. */
  readonly hit: CacheHit;
  /** The key copied in, when `hit` is `restored`. */
  readonly restoredKey?: string;
}

/**
 * Opens a cache through `driver`. `lastUse` gives the runner's own record of when a cache
 * (by driver ID) was last used, in ms since the epoch, for drivers that cannot tell.
 */
export async function openCache(
  driver: Driver,
  request: CacheRequest,
  lastUse: (id: string) => number | undefined,
): Promise<CacheOutcome> {
  const entries = await driver.listCaches?.(request.name) ?? [];
  const existing = entries.some((entry) => entry.handle.key === request.key);
  const seed = existing || request.key === undefined
    ? undefined
    : pickRestore(entries, request.restoreKeys ?? [], lastUse);
  const handle = await driver.createVolume({
    name: request.name,
    kind: "cache",
    ...(request.key === undefined ? {} : { key: request.key }),
    ...(seed === undefined ? {} : { seed: seed.handle }),
  });
  const opened = handle.opened ?? (existing ? "existing" : "created");
  if (opened === "existing") return { handle, hit: "exact" };
  if (opened === "seeded" && seed?.handle.key !== undefined) {
    return { handle, hit: "restored", restoredKey: seed.handle.key };
  }
  return { handle, hit: "miss" };
}

/**
 * The cache to restore from: for the first prefix any keyed cache's key starts with, the
 * most recently used such cache (the later of the driver's and the runner's records).
 */
export function pickRestore(
  entries: readonly CacheEntry[],
  prefixes: readonly string[],
  lastUse: (id: string) => number | undefined,
): CacheEntry | undefined {
  const usedAt = (entry: CacheEntry) =>
    Math.max(
      entry.lastUsedAt === undefined ? 0 : Date.parse(entry.lastUsedAt) || 0,
      lastUse(entry.handle.id) ?? 0,
    );
  for (const prefix of prefixes) {
    const matching = entries.filter((entry) => entry.handle.key?.startsWith(prefix) === true);
    if (matching.length === 0) continue;
    return matching.reduce((best, entry) => usedAt(entry) > usedAt(best) ? entry : best);
  }
  return undefined;
}

/** The one log line about an opened cache. */
export function describeCacheOutcome(request: CacheRequest, outcome: CacheOutcome): string {
  const subject = `cache ${request.name}`;
  if (request.key === undefined) {
    return `${subject}: ${outcome.hit === "exact" ? "found" : "new, empty"}`;
  }
  switch (outcome.hit) {
    case "exact":
      return `${subject}: hit on key ${request.key}`;
    case "restored":
      return `${subject}: no cache for key ${request.key}; restored from ${outcome.restoredKey}`;
    case "miss":
      return `${subject}: miss on key ${request.key}${
        request.restoreKeys?.length
          ? `, nothing matches restore keys ${request.restoreKeys.join(", ")}`
          : ""
      }; starting empty`;
  }
}
