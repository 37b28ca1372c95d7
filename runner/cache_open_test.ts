import assert from "node:assert/strict";
import type { CacheEntry } from "../drivers/contract.ts";
import { describeCacheOutcome, pickRestore } from "./cache_open.ts";

const entry = (key: string | undefined, lastUsedAt: string, id = `id-${key}`): CacheEntry => ({
  handle: { name: "npm", kind: "cache", id, ...(key === undefined ? {} : { key }) },
  lastUsedAt,
});

Deno.test("pickRestore: the first prefix with a match wins, then the most recently used", () => {
  const entries = [
    entry("npm-linux-old", "2026-01-01T00:00:00Z"),
    entry("npm-linux-new", "2026-03-01T00:00:00Z"),
    entry("npm-mac", "2026-06-01T00:00:00Z"),
    entry(undefined, "2026-12-01T00:00:00Z"),
  ];
  const none = () => undefined;
  assert.equal(pickRestore(entries, ["npm-linux-", "npm-"], none)?.handle.key, "npm-linux-new");
  assert.equal(pickRestore(entries, ["npm-"], none)?.handle.key, "npm-mac");
  assert.equal(pickRestore(entries, ["yarn-"], none), undefined);
  // The unkeyed cache is never a restore source, even for an empty prefix.
  assert.equal(pickRestore(entries, [""], none)?.handle.key, "npm-mac");
});

Deno.test("pickRestore: the runner's record of uses counts when newer than the driver's", () => {
  const entries = [
    entry("npm-a", "2026-01-01T00:00:00Z"),
    entry("npm-b", "2026-02-01T00:00:00Z"),
  ];
  const uses = (id: string) => id === "id-npm-a" ? Date.parse("2026-05-01T00:00:00Z") : undefined;
  assert.equal(pickRestore(entries, ["npm-"], uses)?.handle.key, "npm-a");
});

Deno.test("describeCacheOutcome: one line per outcome", () => {
  const handle = { name: "npm", kind: "cache" as const, id: "x" };
  const request = { name: "npm", key: "npm-2", restoreKeys: ["npm-"] };
  assert.equal(
    describeCacheOutcome(request, { handle, hit: "restored", restoredKey: "npm-1" }),
    "cache npm: no cache for key npm-2; restored from npm-1",
  );
  assert.equal(
    describeCacheOutcome(request, { handle, hit: "exact" }),
    "cache npm: hit on key npm-2",
  );
  assert.equal(
    describeCacheOutcome({ name: "npm" }, { handle, hit: "miss" }),
    "cache npm: new, empty",
  );
});
