import assert from "node:assert/strict";
import { type LogDir, logsToPrune, readLogDirs, STARTING_RUN_MS } from "./gc_logs.ts";

const NOW = Date.parse("2026-06-01T12:00:00Z");
const HOUR = 3_600_000;

function dir(runId: string, namespace: string | undefined, hoursAgo: number): LogDir {
  return {
    runId,
    path: `/state/logs/${runId}`,
    ...(namespace === undefined ? {} : { namespace }),
    lastWriteMs: NOW - hoursAgo * HOUR,
  };
}

function pruned(
  dirs: LogDir[],
  policy: { ttlMs: number; keep: number },
  live: string[] = [],
  journals: string[] = [],
): string[] {
  return logsToPrune(dirs, policy, {
    now: NOW,
    liveRuns: new Set(live),
    journalRuns: new Set([...live, ...journals]),
  }).map((p) => p.dir.runId).sort();
}

Deno.test("logsToPrune: logs older than the TTL go, with the ages in readable units", () => {
  const dirs = [dir("a", "ns", 1), dir("b", "ns", 200)];
  const result = logsToPrune(dirs, { ttlMs: 7 * 24 * HOUR, keep: 50 }, {
    now: NOW,
    liveRuns: new Set(),
    journalRuns: new Set(),
  });
  assert.deepEqual(result.map((p) => p.dir.runId), ["b"]);
  assert.equal(result[0].reason, "logs last written 8d8h ago (--log-ttl 7d)");
});

Deno.test("logsToPrune: keeps the newest N runs of each namespace", () => {
  const dirs = [
    dir("a1", "a", 5),
    dir("a2", "a", 4),
    dir("a3", "a", 3),
    dir("b1", "b", 6),
    dir("u1", undefined, 2),
  ];
  assert.deepEqual(pruned(dirs, { ttlMs: 100 * HOUR, keep: 2 }), ["a1"]);
  assert.deepEqual(pruned(dirs, { ttlMs: 100 * HOUR, keep: 1 }), ["a1", "a2"]);
  assert.deepEqual(pruned(dirs, { ttlMs: 100 * HOUR, keep: 0 }), ["a1", "a2", "a3", "b1", "u1"]);
  const [reason] = logsToPrune(
    [dir("x", "a", 2), dir("y", "a", 1)],
    { ttlMs: 100 * HOUR, keep: 1 },
    {
      now: NOW,
      liveRuns: new Set(),
      journalRuns: new Set(),
    },
  );
  assert.equal(reason.reason, "older than the newest 1 runs of namespace a (--keep-logs)");
});

Deno.test("logsToPrune: a live run's logs are never pruned, and count towards N", () => {
  const dirs = [dir("old-live", "a", 500), dir("a2", "a", 2), dir("a3", "a", 1)];
  assert.deepEqual(pruned(dirs, { ttlMs: 1, keep: 0 }, ["old-live"]), ["a2", "a3"]);
  assert.deepEqual(pruned(dirs, { ttlMs: 100 * HOUR, keep: 2 }, ["old-live"]), ["a2"]);
});

Deno.test("logsToPrune: fresh logs without a journal may be a starting run's and are kept", () => {
  const starting: LogDir = { ...dir("new", "a", 0), lastWriteMs: NOW - STARTING_RUN_MS / 2 };
  assert.deepEqual(pruned([starting], { ttlMs: 1, keep: 0 }), []);
  // With a dead journal it is not starting: it was killed.
  assert.deepEqual(pruned([starting], { ttlMs: 1, keep: 0 }, [], ["new"]), ["new"]);
  const older: LogDir = { ...starting, lastWriteMs: NOW - STARTING_RUN_MS * 2 };
  assert.deepEqual(pruned([older], { ttlMs: 1, keep: 0 }), ["new"]);
});

Deno.test("readLogDirs: namespace and driver from run.start, last write from events.jsonl", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "pocketci-gc-logs-" });
  const run = `${stateDir}/logs/r1`;
  await Deno.mkdir(run, { recursive: true });
  const start = {
    type: "run.start",
    runId: "r1",
    pipeline: "/p.ts",
    driver: "docker",
    namespace: "ci-1234",
    logDir: run,
  };
  await Deno.writeTextFile(
    `${run}/events.jsonl`,
    JSON.stringify(start) + "\n" + JSON.stringify({ type: "log", message: "x" }) + "\n",
  );
  await Deno.utime(`${run}/events.jsonl`, NOW / 1000, NOW / 1000);
  await Deno.mkdir(`${stateDir}/logs/broken`);
  await Deno.writeTextFile(`${stateDir}/logs/broken/events.jsonl`, "{torn");
  await Deno.writeTextFile(`${stateDir}/logs/stray-file`, "");
  await Deno.symlink("/", `${stateDir}/logs/link`);
  const dirs = (await readLogDirs(stateDir)).sort((a, b) => a.runId.localeCompare(b.runId));
  assert.deepEqual(dirs.map((d) => d.runId), ["broken", "r1"]);
  assert.equal(dirs[0].namespace, undefined);
  assert.deepEqual(
    { ...dirs[1] },
    { runId: "r1", path: run, namespace: "ci-1234", driver: "docker", lastWriteMs: NOW },
  );
  await Deno.remove(stateDir, { recursive: true });
});
