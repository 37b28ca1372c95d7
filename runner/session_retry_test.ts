import assert from "node:assert/strict";
import type { Driver, ExitStatus, TaskSpec } from "../drivers/contract.ts";
import { checkRetry } from "../dsl/retry.ts";
import type { RunEvent } from "./events.ts";
import { Masker } from "./mask.ts";
import { RunSession } from "./session.ts";

/** A driver whose tasks exit with the next code of `codes` (then 0); `hang` never exits. */
function scriptedDriver(codes: (number | "hang" | "error")[]) {
  const specs: TaskSpec[] = [];
  const unused = () => Promise.reject(new Error("unused"));
  const driver: Driver = {
    name: "native",
    capabilities: {
      liveStreaming: true,
      separateStderr: true,
      stdin: true,
      sandboxes: false,
      user: false,
      privileged: false,
      limits: false,
      caches: false,
      images: false,
    },
    startTask: (spec, output) => {
      specs.push(spec);
      const next = codes.shift() ?? 0;
      if (next === "error") return Promise.reject(new Error("pull failed: registry unreachable"));
      output("stdout", new TextEncoder().encode(`attempt ${specs.length} key=tok-secret-9\n`));
      let stopped: (exit: ExitStatus) => void = () => {};
      const exit = next === "hang"
        ? new Promise<ExitStatus>((resolve) => stopped = resolve)
        : Promise.resolve({ code: next });
      return Promise.resolve({
        id: spec.id,
        wait: () => exit,
        stop: () => {
          stopped({ code: 143 });
          return Promise.resolve();
        },
        remove: () => Promise.resolve(),
      });
    },
    attachTask: () => Promise.resolve(undefined),
    createVolume: unused,
    removeVolume: unused,
    putArchive: unused,
    getArchive: unused,
    startSandbox: unused,
    close: () => Promise.resolve({ removed: [], failed: [] }),
  };
  return { driver, specs };
}

function session(driver: Driver) {
  const events: RunEvent[] = [];
  const s = new RunSession({
    driver,
    driverName: "native",
    runId: "run-1",
    masker: new Masker(["tok-secret-9"]),
    secrets: new Map(),
    emit: (event) => events.push(event),
    paths: { baseDir: "/nonexistent", readRoots: [], writeRoots: [] },
    graceMs: 100,
  });
  return { s, events };
}

const request = (extra: Record<string, unknown> = {}) => ({
  name: "flaky",
  command: ["x"],
  env: {},
  mounts: [],
  ...extra,
});

const ofType = <T extends RunEvent["type"]>(events: RunEvent[], type: T) =>
  events.filter((event): event is Extract<RunEvent, { type: T }> => event.type === type);

Deno.test("retry: fails twice, then succeeds; every attempt is an event pair, backoff delays in task.end", async () => {
  const { driver, specs } = scriptedDriver([1, 1, 0]);
  const { s, events } = session(driver);
  const result = await s.runTask(
    request({ retry: checkRetry(3, { delay: 50, backoff: 2 }) }),
  );
  assert.equal(result.status, "success");
  assert.equal(result.attempts, 3);
  assert.equal(specs.length, 3);
  assert.equal(result.stdout, "attempt 3 key=***\n", "the last attempt's output, masked");
  const starts = ofType(events, "task.start");
  assert.deepEqual(starts.map((e) => [e.id, e.attempt, e.maxAttempts]), [
    [result.id, 1, 4],
    [result.id, 2, 4],
    [result.id, 3, 4],
  ]);
  const ends = ofType(events, "task.end");
  assert.deepEqual(ends.map((e) => [e.status, e.attempt, e.retryInMs]), [
    ["failure", 1, 50],
    ["failure", 2, 100],
    ["success", 3, undefined],
  ]);
  assert.ok(!JSON.stringify(events).includes("tok-secret-9"), "every attempt is masked");
  assert.equal(s.records.length, 1, "one summary record for the task");
  assert.equal(s.records[0].result.attempts, 3);
  assert.deepEqual(s.unawaited(), []);
});

Deno.test("retry: gives up after n retries with the last attempt's result", async () => {
  const { driver, specs } = scriptedDriver([1, 2, 3]);
  const { s } = session(driver);
  const result = await s.runTask(request({ retry: checkRetry(2) }));
  assert.equal(result.status, "failure");
  assert.equal(result.code, 3);
  assert.equal(result.attempts, 3);
  assert.equal(specs.length, 3);
});

Deno.test("retry: `when` filters: a timeout is not retried when only failures are", async () => {
  const { driver, specs } = scriptedDriver(["hang", "hang"]);
  const { s, events } = session(driver);
  const result = await s.runTask(
    request({ timeoutMs: 50, retry: checkRetry(2, { when: ["failure"] }) }),
  );
  assert.equal(result.status, "timeout");
  assert.equal(result.attempts, 1);
  assert.equal(specs.length, 1);
  assert.equal(ofType(events, "task.end")[0].retryInMs, undefined);
});

Deno.test("retry: a timeout is retried by default, each attempt with the whole timeout", async () => {
  const { driver, specs } = scriptedDriver(["hang", 0]);
  const { s, events } = session(driver);
  const result = await s.runTask(request({ timeoutMs: 50, retry: checkRetry(1) }));
  assert.equal(result.status, "success");
  assert.equal(result.attempts, 2);
  assert.equal(specs.length, 2);
  assert.deepEqual(ofType(events, "task.end").map((e) => e.status), ["timeout", "success"]);
});

Deno.test("retry: a driver error is retried unless `when` leaves it out; a refused request never is", async () => {
  const first = scriptedDriver(["error", 0]);
  const retried = await session(first.driver).s.runTask(request({ retry: checkRetry(1) }));
  assert.equal(retried.status, "success");
  assert.equal(retried.attempts, 2);

  const second = scriptedDriver(["error", 0]);
  const kept = await session(second.driver).s.runTask(
    request({ retry: checkRetry(1, { when: ["failure", "timeout"] }) }),
  );
  assert.equal(kept.status, "error");
  assert.equal(kept.attempts, 1);

  const third = scriptedDriver([]);
  const refused = await session(third.driver).s.runTask(
    request({ user: "nobody", retry: checkRetry(3) }),
  );
  assert.equal(refused.status, "error");
  assert.equal(refused.attempts, 0, "never started");
  assert.equal(third.specs.length, 0);
});

Deno.test("retry: cancelling during the delay stops the retries at once; the next attempt is cancelled unstarted", async () => {
  const { driver, specs } = scriptedDriver([1, 0]);
  const { s, events } = session(driver);
  const started = performance.now();
  const pending = s.runTask(request({ retry: checkRetry(2, { delay: "30s" }) }));
  while (!ofType(events, "task.end").some((e) => e.retryInMs === 30_000)) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  s.cancel("interrupted by SIGINT");
  const result = await pending;
  assert.ok(performance.now() - started < 5_000, "did not wait out the 30 s delay");
  assert.equal(result.status, "cancelled");
  assert.equal(result.attempts, 1, "one attempt ran");
  assert.equal(specs.length, 1);
  const last = ofType(events, "task.end").at(-1)!;
  assert.deepEqual([last.status, last.attempt, last.totalMs], ["cancelled", 2, undefined]);
  assert.equal(ofType(events, "task.start").length, 1, "no start event for the cancelled attempt");
});

Deno.test("retry: a cancelled attempt is never retried", async () => {
  const { driver, specs } = scriptedDriver(["hang", 0]);
  const { s, events } = session(driver);
  const pending = s.runTask(request({ retry: checkRetry(3) }));
  while (ofType(events, "task.start").length === 0) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  s.cancel("interrupted by SIGINT");
  const result = await pending;
  assert.equal(result.status, "cancelled");
  assert.equal(result.attempts, 1);
  assert.equal(specs.length, 1);
});

Deno.test("retry: the runner refuses a policy outside the DSL's bounds", async () => {
  const { driver } = scriptedDriver([]);
  const { s } = session(driver);
  await assert.rejects(
    s.runTask(request({ retry: { max: 11, when: ["failure"], delayMs: 0, backoff: 1 } })),
    /retry\(\) needs a whole number of retries from 0 to 10, not 11/,
  );
  await assert.rejects(
    s.runTask(request({ retry: { max: 1, when: ["cancelled"], delayMs: 0, backoff: 1 } })),
    /"when" must be a non-empty list/,
  );
  await assert.rejects(
    s.runTask(request({ retry: { max: 1, when: ["failure"], delayMs: 7_200_000, backoff: 1 } })),
    /"delay" must be a duration from 0 to 1h/,
  );
});

Deno.test("groups: events with parent IDs and durations; tasks carry their group; unknown IDs are refused", async () => {
  const { driver } = scriptedDriver([0, 0]);
  const { s, events } = session(driver);
  const outer = await s.startGroup({ name: "tests" });
  const inner = await s.startGroup({ name: "unit", parentId: outer.id });
  const result = await s.runTask(request({ groupId: inner.id }));
  await s.endGroup(inner.id, "success");
  await s.endGroup(inner.id, "failure");
  await s.endGroup(outer.id, "failure");
  assert.equal(result.status, "success");
  assert.deepEqual(ofType(events, "group.start"), [
    { type: "group.start", id: outer.id, name: "tests" },
    { type: "group.start", id: inner.id, name: "unit", parentId: outer.id },
  ]);
  const ends = ofType(events, "group.end");
  assert.deepEqual(ends.map((e) => [e.id, e.status, e.parentId]), [
    [inner.id, "success", outer.id],
    [outer.id, "failure", undefined],
  ], "a second end of a group is ignored");
  assert.ok(ends.every((e) => typeof e.durationMs === "number" && e.durationMs >= 0));
  assert.equal(ofType(events, "task.start")[0].groupId, inner.id);
  assert.equal(ofType(events, "task.end")[0].groupId, inner.id);
  await assert.rejects(s.runTask(request({ groupId: "group-99" })), /invalid group ID/);
  await assert.rejects(s.startGroup({ name: "x", parentId: "nope" }), /invalid group ID/);
  await assert.rejects(s.startGroup({ name: "" }), /group\(\) needs a non-empty name/);
  await assert.rejects(s.endGroup(outer.id, "maybe" as "success"), /invalid group outcome/);
});

Deno.test("groups: a failed group of a cancelled run is cancelled; groups left open are closed", async () => {
  const { driver } = scriptedDriver([]);
  const { s, events } = session(driver);
  const failed = await s.startGroup({ name: "a" });
  const open = await s.startGroup({ name: "b" });
  s.cancel("interrupted by SIGINT");
  await s.endGroup(failed.id, "failure");
  s.closeGroups();
  assert.deepEqual(ofType(events, "group.end").map((e) => [e.id, e.status]), [
    [failed.id, "cancelled"],
    [open.id, "cancelled"],
  ]);
});

Deno.test("retry: a sandbox call is retried in the same sandbox, each attempt an exec", async () => {
  const { driver } = scriptedDriver([]);
  const codes = [1, 0];
  const calls: string[] = [];
  const sandboxDriver: Driver = {
    ...driver,
    capabilities: { ...driver.capabilities, sandboxes: true },
    startSandbox: (spec) =>
      Promise.resolve({
        id: spec.id,
        exec: (call) => {
          calls.push(call.command.join(" "));
          return Promise.resolve({ code: codes.shift() ?? 0 });
        },
        close: () => Promise.resolve(),
      }),
  };
  const { s, events } = session(sandboxDriver);
  const box = await s.startSandbox({ ...request({ name: "box" }), command: [] });
  const group = await s.startGroup({ name: "in-box" });
  const result = await s.execSandbox(box.id, {
    command: ["make", "test"],
    retry: checkRetry(2),
    groupId: group.id,
  });
  assert.equal(result.status, "success");
  assert.equal(result.attempts, 2);
  assert.deepEqual(calls, ["make test", "make test"]);
  const ends = ofType(events, "task.end");
  assert.deepEqual(ends.map((e) => [e.kind, e.attempt, e.retryInMs, e.groupId]), [
    ["exec", 1, 0, group.id],
    ["exec", 2, undefined, group.id],
  ]);
  await s.closeSandboxes();
});
