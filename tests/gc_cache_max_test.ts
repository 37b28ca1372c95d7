// `gc --cache-max`: least recently used caches go first until the rest fit; a live run's stay.
import assert from "node:assert/strict";
import { collectGarbage } from "../runner/gc.ts";
import { liveJournal } from "./helpers/journal.ts";
import { getDriverFactory } from "../drivers/registry.ts";
import { resolveDsn } from "../dsn/mod.ts";
import { runCli } from "./helpers/cli.ts";

const HOUR = 3_600_000;

/** Four 1000-byte native caches in namespace `ns`, last used 4, 3, 2 and 1 hours ago. */
async function fixture(): Promise<{ stateDir: string; dirs: Record<string, string> }> {
  const stateDir = await Deno.makeTempDir({ prefix: "pocketci-gc-max-" });
  const dirs: Record<string, string> = {};
  for (const [name, hoursAgo] of [["a", 4], ["b", 3], ["c", 2], ["d", 1]] as const) {
    const dir = `${stateDir}/native/caches/ns/${name}`;
    await Deno.mkdir(`${dir}/sub`, { recursive: true });
    await Deno.writeFile(`${dir}/sub/blob`, new Uint8Array(1000));
    const usedAt = new Date(Date.now() - hoursAgo * HOUR).toISOString();
    await Deno.writeTextFile(
      `${dir}.meta.json`,
      JSON.stringify({ name, lastUsedAt: usedAt, runId: "r" }),
    );
    await Deno.writeTextFile(
      `${stateDir}/caches.jsonl`,
      JSON.stringify({ driver: "native", namespace: "ns", name, id: dir, usedAt }) + "\n",
      { append: true },
    );
    dirs[name] = dir;
  }
  // A live run (this process) uses the oldest cache.
  await liveJournal(stateDir, "live-run", "ns", "native", [
    { kind: "cache", id: dirs.a, driver: "native", namespace: "ns" },
  ]);
  return { stateDir, dirs };
}

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

Deno.test("gc --cache-max removes the least recently used caches until the rest fit, never a live run's", async () => {
  const { stateDir, dirs } = await fixture();
  try {
    const report = await collectGarbage({
      stateDir,
      defaultDsn: (driver) => resolveDsn(driver, { env: {}, cwd: stateDir }),
      factory: getDriverFactory,
      cacheTtlMs: 7 * 24 * HOUR,
      cacheMaxBytes: 2500,
      dryRun: false,
    });
    assert.deepEqual(report.problems, []);
    const removed = report.actions.filter((action) => action.action === "removed");
    assert.deepEqual(removed.map((action) => action.resource.id), [dirs.b, dirs.c]);
    assert.match(
      removed[0].reason,
      /^caches hold 4\.0 KB, over --cache-max 2\.5 KB; least recently used \(3h ago\), 1\.0 KB$/,
    );
    assert.deepEqual(
      await Promise.all([dirs.a, dirs.b, dirs.c, dirs.d].map(exists)),
      [true, false, false, true],
    );
  } finally {
    await Deno.remove(stateDir, { recursive: true });
  }
});

Deno.test("pocketci gc --cache-max parses sizes like memory limits; a bad one exits 2", async () => {
  const { stateDir, dirs } = await fixture();
  try {
    const env = { POCKETCI_STATE_DIR: stateDir };
    const dry = await runCli(["gc", "--cache-max=3.5KB", "--dry-run", "--json"], { env });
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    const would = dry.stdout.trim().split("\n").map((line) => JSON.parse(line))
      .filter((line) => line.type === "resource").map((line) => line.resource.id);
    assert.deepEqual(would, [dirs.b]);
    assert.ok(await exists(dirs.b), "a dry run removes nothing");
    const bad = await runCli(["gc", "--cache-max=huge"], { env });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--cache-max: expected a positive size such as 10GB/);
  } finally {
    await Deno.remove(stateDir, { recursive: true });
  }
});
