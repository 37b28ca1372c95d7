import assert from "node:assert/strict";
import {
  defaultStateDir,
  isProcessAlive,
  parseJournal,
  processStartTime,
  readJournals,
  RunJournal,
  runPaths,
} from "./state.ts";
import type { ResourceRecord } from "../drivers/contract.ts";

Deno.test("state dir: POCKETCI_STATE_DIR, then XDG_STATE_HOME, then HOME", () => {
  assert.equal(
    defaultStateDir({ POCKETCI_STATE_DIR: "/s", XDG_STATE_HOME: "/x", HOME: "/h" }),
    "/s",
  );
  assert.equal(defaultStateDir({ XDG_STATE_HOME: "/x", HOME: "/h" }), "/x/pocketci");
  assert.equal(defaultStateDir({ HOME: "/h" }), "/h/.local/state/pocketci");
  assert.throws(() => defaultStateDir({}), /POCKETCI_STATE_DIR/);
});

Deno.test("journal: records as it goes, forgets, and is deleted when nothing is left", async () => {
  const dir = await Deno.makeTempDir();
  const paths = runPaths(dir, "run1", "ns");
  const journal = await RunJournal.create(paths.journal, {
    runId: "run1",
    namespace: "ns",
    driver: "native",
    pipeline: "/p.ts",
    process: { pid: Deno.pid },
    startedAt: new Date().toISOString(),
  });
  const proc: ResourceRecord = { kind: "process", id: "123", driver: "native" };
  const cache: ResourceRecord = { kind: "cache", id: "c", driver: "native" };
  await journal.record(proc);
  await journal.record(cache);
  const [snapshot] = await readJournals(dir);
  assert.equal(snapshot.header?.runId, "run1");
  assert.deepEqual(snapshot.outstanding, [proc, cache], "visible on disk before the run ends");
  await journal.forget(proc);
  await journal.finish();
  assert.deepEqual(await readJournals(dir), [], "only a cache left: the journal is removed");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("journal: a torn last line is tolerated", () => {
  const text = [
    JSON.stringify({ type: "run", version: 1, runId: "r" }),
    JSON.stringify({ type: "record", resource: { kind: "dir", id: "/a", driver: "native" } }),
    '{"type":"record","resource":{"kind":"dir","id":"/b"',
  ].join("\n");
  const snapshot = parseJournal("x", text);
  assert.equal(snapshot.outstanding.length, 1);
  assert.equal(snapshot.ended, false);
});

Deno.test("liveness: this process is alive; a wrong start time or a missing pid is dead", async () => {
  const startTime = await processStartTime(Deno.pid);
  assert.ok(startTime !== undefined);
  assert.equal(await isProcessAlive({ pid: Deno.pid, startTime }), true);
  assert.equal(await isProcessAlive({ pid: Deno.pid, startTime: "1" }), false);
  assert.equal(await isProcessAlive({ pid: 2 ** 22 + 12345 }), false);
});
