import assert from "node:assert/strict";
import { autoGc, autoGcDisabled } from "./auto_gc.ts";
import { liveJournal } from "../tests/helpers/journal.ts";
import { nativeFactory } from "../drivers/native/factory.ts";
import type { ResolvedDsn } from "../dsn/types.ts";

const DAY = 24 * 3_600_000;
const DSN: ResolvedDsn = {
  driver: "native",
  namespace: "ns",
  namespaceFromDsn: true,
  params: {},
  config: {},
  warnings: [],
};

/** A native cache of namespace `ns` last used `daysAgo` days ago. */
async function oldCache(stateDir: string, name: string, daysAgo: number): Promise<string> {
  const dir = `${stateDir}/native/caches/ns/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  const usedAt = new Date(Date.now() - daysAgo * DAY).toISOString();
  await Deno.writeTextFile(
    `${dir}.meta.json`,
    JSON.stringify({ name, lastUsedAt: usedAt, runId: "r" }),
  );
  return dir;
}

/** A run log directory last written `daysAgo` days ago. */
async function oldLog(stateDir: string, runId: string, daysAgo: number): Promise<string> {
  const dir = `${stateDir}/logs/${runId}`;
  await Deno.mkdir(dir, { recursive: true });
  const start = { type: "run.start", runId, driver: "native", namespace: "ns" };
  await Deno.writeTextFile(`${dir}/events.jsonl`, JSON.stringify(start) + "\n");
  const when = new Date(Date.now() - daysAgo * DAY);
  await Deno.utime(`${dir}/events.jsonl`, when, when);
  return dir;
}

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

Deno.test("automatic gc: removes old caches and logs at most once a day, logs one line, spares a live run's cache", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "pocketci-autogc-" });
  try {
    const stale = await oldCache(stateDir, "stale", 8);
    const fresh = await oldCache(stateDir, "fresh", 1);
    const used = await oldCache(stateDir, "used-by-live-run", 9);
    const log = await oldLog(stateDir, "old-run", 10);
    // A live run (this process) holds the third cache.
    await liveJournal(stateDir, "live", "ns", "native", [
      { kind: "cache", id: used, driver: "native" },
    ]);
    const lines: string[] = [];
    const options = {
      stateDir,
      dsn: DSN,
      factory: nativeFactory,
      log: (level: string, message: string) => lines.push(`${level}: ${message}`),
    };
    assert.equal(await autoGc(options), true);
    assert.deepEqual(
      await Promise.all([stale, fresh, used, log].map(exists)),
      [false, true, true, false],
    );
    assert.deepEqual(lines, [
      "info: automatic gc (at most daily; POCKETCI_NO_AUTO_GC=1 turns it off): removed 1 cache(s) unused for 7d and 1 old run log(s)",
    ]);
    // Within a day it does not run again.
    const again = await oldCache(stateDir, "stale-again", 8);
    assert.equal(await autoGc(options), false);
    assert.ok(await exists(again));
    assert.equal(lines.length, 1);
    // A day later it does; with nothing to remove it stays silent.
    await Deno.remove(again, { recursive: true });
    await Deno.remove(`${again}.meta.json`);
    assert.equal(await autoGc({ ...options, now: new Date(Date.now() + DAY + 1000) }), true);
    assert.equal(lines.length, 1);
  } finally {
    await Deno.remove(stateDir, { recursive: true });
  }
});

Deno.test("automatic gc: POCKETCI_NO_AUTO_GC=1 turns it off; empty or 0 does not", () => {
  assert.equal(autoGcDisabled({ POCKETCI_NO_AUTO_GC: "1" }), true);
  assert.equal(autoGcDisabled({ POCKETCI_NO_AUTO_GC: "0" }), false);
  assert.equal(autoGcDisabled({ POCKETCI_NO_AUTO_GC: "" }), false);
  assert.equal(autoGcDisabled({}), false);
});
