/**
 * `gc` judges every recorded path by what it would really delete: a forged journal line with
 * `..`, an absolute path elsewhere or a symlinked component must not reach outside the state
 * directory (#8 item 17).
 */

import assert from "node:assert/strict";
import type { ResourceRecord } from "../drivers/contract.ts";
import { getDriverFactory } from "../drivers/registry.ts";
import { MARKER_FILE } from "../drivers/native/layout.ts";
import { createNativeMaintenance } from "../drivers/native/maintenance.ts";
import { resolveDsn } from "../dsn/mod.ts";
import { collectGarbage, type GcReport, maintenanceContext } from "../runner/gc.ts";

const RUN = "0000000000deadrun";

interface Layout {
  readonly tmp: string;
  readonly stateDir: string;
  /** A native workspace of the dead run (marked). */
  readonly workspace: string;
  /** A directory outside the state directory, with a file in it. */
  readonly victim: string;
}

async function layout(): Promise<Layout> {
  const tmp = await Deno.realPath(await Deno.makeTempDir({ prefix: "pocketci-gc-paths-" }));
  const stateDir = `${tmp}/state`;
  const workspace = `${stateDir}/work/${RUN}/native`;
  await Deno.mkdir(workspace, { recursive: true });
  await Deno.writeTextFile(`${workspace}/${MARKER_FILE}`, "");
  const victim = `${tmp}/victim`;
  await Deno.mkdir(victim);
  await Deno.writeTextFile(`${victim}/precious`, "keep me");
  return { tmp, stateDir, workspace, victim };
}

/** Writes the journal of a dead run (this process's pid with a start time it never had). */
async function deadJournal(stateDir: string, records: readonly ResourceRecord[]): Promise<void> {
  await Deno.mkdir(`${stateDir}/runs`, { recursive: true });
  const header = {
    type: "run",
    version: 1,
    runId: RUN,
    namespace: "ns",
    driver: "native",
    pipeline: "/nowhere/pipeline.ts",
    process: { pid: Deno.pid, startTime: "0" },
    startedAt: new Date().toISOString(),
  };
  const lines = [header, ...records.map((resource) => ({ type: "record", resource }))];
  await Deno.writeTextFile(
    `${stateDir}/runs/${RUN}.jsonl`,
    lines.map((line) => JSON.stringify(line) + "\n").join(""),
  );
}

function nativeDir(id: string): ResourceRecord {
  return { kind: "dir", id, driver: "native", runId: RUN, namespace: "ns" };
}

function runnerDir(id: string): ResourceRecord {
  return { ...nativeDir(id), detail: { owner: "runner" } };
}

async function gc(stateDir: string): Promise<GcReport> {
  return await collectGarbage({
    stateDir,
    defaultDsn: (driver) => resolveDsn(driver, { env: {}, cwd: stateDir }),
    factory: getDriverFactory,
    cacheTtlMs: 3_600_000,
    dryRun: false,
  });
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

function assertRefused(report: GcReport, id: string, pattern: RegExp): void {
  const action = report.actions.find((a) => a.resource.id === id);
  assert.ok(action, `gc reported ${id}: ${JSON.stringify(report.actions)}`);
  assert.equal(action.action, "failed");
  assert.match(action.reason, pattern);
}

Deno.test("gc paths: a native dir with .. that leads out of the workspace is not removed", async () => {
  const { tmp, stateDir, workspace, victim } = await layout();
  const forged = `${workspace}/../../../../victim`;
  await deadJournal(stateDir, [nativeDir(forged)]);
  const report = await gc(stateDir);
  assertRefused(report, forged, /not inside a native driver workspace \(it is .*\/victim\)/);
  assert.equal(await Deno.readTextFile(`${victim}/precious`), "keep me");
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("gc paths: a native dir outside every workspace (absolute) is not removed", async () => {
  const { tmp, stateDir, victim } = await layout();
  await deadJournal(stateDir, [nativeDir(victim)]);
  const report = await gc(stateDir);
  assertRefused(report, victim, /not inside a native driver workspace/);
  assert.equal(await Deno.readTextFile(`${victim}/precious`), "keep me");
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("gc paths: a native dir through a symlinked component is judged by its real path", async () => {
  const { tmp, stateDir, workspace, victim } = await layout();
  await Deno.symlink(tmp, `${workspace}/link`);
  const forged = `${workspace}/link/victim`;
  await deadJournal(stateDir, [nativeDir(forged)]);
  const report = await gc(stateDir);
  assertRefused(report, forged, /not inside a native driver workspace \(it is .*\/victim\)/);
  assert.equal(await Deno.readTextFile(`${victim}/precious`), "keep me");
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("gc paths: a runner dir that is the work directory itself (work/.) is not removed", async () => {
  const { tmp, stateDir } = await layout();
  await Deno.mkdir(`${stateDir}/work/another-run`);
  const forged = `${stateDir}/work/.`;
  await deadJournal(stateDir, [runnerDir(forged)]);
  const report = await gc(stateDir);
  assertRefused(report, forged, /is not a run directory under .*; refusing/);
  assert.ok(await exists(`${stateDir}/work/another-run`), "another run's directory is kept");
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("gc paths: a runner dir with .. or a symlink leading out is not removed", async () => {
  const { tmp, stateDir, victim } = await layout();
  await Deno.symlink(tmp, `${stateDir}/work/link`);
  const dotted = `${stateDir}/work/${RUN}/../../../victim`;
  const linked = `${stateDir}/work/link/victim`;
  await deadJournal(stateDir, [runnerDir(dotted), runnerDir(linked)]);
  const report = await gc(stateDir);
  assertRefused(report, dotted, /is not a run directory under/);
  assertRefused(report, linked, /is not a run directory under/);
  assert.equal(await Deno.readTextFile(`${victim}/precious`), "keep me");
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("gc paths: the legitimate run and workspace directories are removed", async () => {
  const { tmp, stateDir, workspace, victim } = await layout();
  await Deno.mkdir(`${workspace}/task-1/sub`, { recursive: true });
  await Deno.writeTextFile(`${workspace}/task-1/sub/out`, "x");
  // A symlink in the workspace to a directory outside is unlinked, its target untouched.
  await Deno.symlink(victim, `${workspace}/task-1/mount`);
  await deadJournal(stateDir, [
    runnerDir(`${stateDir}/work/${RUN}`),
    nativeDir(workspace),
    nativeDir(`${workspace}/task-1`),
  ]);
  const report = await gc(stateDir);
  assert.deepEqual(
    report.actions.map((a) => [a.action, a.resource.id]),
    [
      ["removed", `${workspace}/task-1`],
      ["removed", workspace],
      ["removed", `${stateDir}/work/${RUN}`],
    ],
  );
  assert.equal(await exists(`${stateDir}/work/${RUN}`), false);
  assert.equal(await exists(`${stateDir}/runs/${RUN}.jsonl`), false, "the journal is done");
  assert.equal(await Deno.readTextFile(`${victim}/precious`), "keep me");
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("gc paths: a cache path with .. is refused; a real cache is removed", async () => {
  const { tmp, stateDir } = await layout();
  const maintenance = await createNativeMaintenance(maintenanceContext(stateDir, "ns"));
  const root = `${stateDir}/native/caches/ns`;
  const other = `${stateDir}/native/caches/other/c2`;
  await Deno.mkdir(`${root}/c1`, { recursive: true });
  await Deno.mkdir(other, { recursive: true });
  const cache = (id: string): ResourceRecord => ({ kind: "cache", id, driver: "native" });
  await assert.rejects(
    () => maintenance.removeResource(cache(`${root}/..`)),
    /is not a cache of this namespace \(it is .*\/native\/caches\); refusing/,
  );
  await assert.rejects(
    () => maintenance.removeResource(cache(`${root}/c1/../../other/c2`)),
    /is not a cache of this namespace/,
  );
  assert.ok(await exists(other), "another namespace's cache is kept");
  await maintenance.removeResource(cache(`${root}/c1`));
  assert.equal(await exists(`${root}/c1`), false);
  await Deno.remove(tmp, { recursive: true });
});
