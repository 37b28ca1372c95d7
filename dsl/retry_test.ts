import assert from "node:assert/strict";
import { group, sandbox, task, TaskError, type TaskResult } from "./mod.ts";
import {
  type ExecRequest,
  type GroupRequest,
  installHost,
  type PipelineHost,
  type TaskRequest,
} from "./host.ts";
import { checkRetry, MAX_RETRY_DELAY_MS, retryDelayMs } from "./retry.ts";

Deno.test("retry(): defaults retry every unsuccessful ending at once, with a constant delay", () => {
  assert.deepEqual(checkRetry(2), {
    max: 2,
    when: ["failure", "timeout", "error"],
    delayMs: 0,
    backoff: 1,
  });
  assert.deepEqual(checkRetry(1, { when: ["timeout", "failure"], delay: "2s", backoff: 2 }), {
    max: 1,
    when: ["failure", "timeout"],
    delayMs: 2000,
    backoff: 2,
  });
  assert.equal(checkRetry(0).max, 0, "0 turns a template's retries off");
});

Deno.test("retry(): bad arguments are one-line errors naming the fix", () => {
  for (const n of [-1, 11, 1.5, "2", NaN]) {
    assert.throws(() => checkRetry(n), /retry\(\) needs a whole number of retries from 0 to 10/);
  }
  assert.throws(() => checkRetry(1, { when: [] }), /"when" must be a non-empty list/);
  assert.throws(() => checkRetry(1, { when: ["cancelled"] }), /"when" must be a non-empty list/);
  assert.throws(() => checkRetry(1, { delay: "soon" }), /option "delay": invalid duration "soon"/);
  assert.throws(() => checkRetry(1, { delay: "2h" }), /"delay" must be at most 1h/);
  assert.throws(() => checkRetry(1, { backoff: 0.5 }), /"backoff" must be a number from 1/);
  assert.throws(() => checkRetry(1, { backoff: 11 }), /"backoff" must be a number from 1/);
  assert.throws(() => checkRetry(1, { tries: 3 } as never), /retry\(\) has no option "tries"/);
  assert.throws(() => task("t").retry(99), /from 0 to 10, not 99/);
});

Deno.test("retry delays grow by the backoff and stop at one hour", () => {
  const policy = checkRetry(10, { delay: "1s", backoff: 3 });
  assert.deepEqual([1, 2, 3].map((attempt) => retryDelayMs(policy, attempt)), [1000, 3000, 9000]);
  assert.equal(retryDelayMs(policy, 10), MAX_RETRY_DELAY_MS);
});

function recordingHost() {
  const tasks: TaskRequest[] = [];
  const execs: ExecRequest[] = [];
  const starts: TaskRequest[] = [];
  const groups: GroupRequest[] = [];
  const ends: [string, string][] = [];
  const ok = (name: string): TaskResult => ({
    name,
    id: "id",
    code: 0,
    stdout: "",
    stderr: "",
    status: "success",
    durationMs: 1,
    attempts: 1,
  });
  // Only the methods these tests call (services and the rest are not needed).
  const host: Partial<PipelineHost> = {
    runTask: async (request) => {
      // A turn of the event loop, as over the socket: the group must survive awaits.
      await new Promise((resolve) => setTimeout(resolve, 1));
      tasks.push(request);
      return ok(request.name);
    },
    createVolume: () => Promise.reject(new Error("unused")),
    readFiles: () => Promise.resolve({}),
    readFile: () => Promise.resolve(new Uint8Array()),
    writeFiles: () => Promise.resolve(),
    exportTo: () => Promise.resolve(),
    startSandbox: (request) => {
      starts.push(request);
      return Promise.resolve({ id: "sb-1", name: request.name });
    },
    execSandbox: (_id, request) => {
      execs.push(request);
      return Promise.resolve(ok("sb"));
    },
    closeSandbox: () => Promise.resolve(),
    hashFiles: () => Promise.resolve(""),
    startGroup: (request) => {
      groups.push(request);
      return Promise.resolve({ id: `group-${groups.length}` });
    },
    endGroup: (id, outcome) => {
      ends.push([id, outcome]);
      return Promise.resolve();
    },
  };
  installHost(host as PipelineHost);
  return { tasks, execs, starts, groups, ends };
}

Deno.test("retry(): tasks and sandbox calls send the policy; a sandbox start does not", async () => {
  const { tasks, execs, starts } = recordingHost();
  await task("t").retry(2, { delay: "1s" }).run("true");
  await task("plain").run("true");
  const box = await sandbox("s").retry(1).start();
  await box.run("true");
  await box.retry(3, { when: ["timeout"] }).run("true");
  assert.deepEqual(tasks[0].retry, checkRetry(2, { delay: "1s" }));
  assert.equal(tasks[1].retry, undefined);
  assert.equal(starts[0].retry, undefined, "starting a sandbox is not retried");
  assert.deepEqual(
    execs[0].retry,
    checkRetry(1),
    "the sandbox builder's retry is its calls' default",
  );
  assert.deepEqual(execs[1].retry, checkRetry(3, { when: ["timeout"] }));
  installHost(undefined);
});

Deno.test("group(): tasks inside carry the group across awaits; nesting and concurrency keep their own IDs", async () => {
  const { tasks, execs, groups, ends } = recordingHost();
  const box = await sandbox("s").start();
  const value = await group("outer", async () => {
    await task("a").run("true");
    await Promise.all([
      group("left", async () => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        await task("in-left").run("true");
      }),
      group("right", () => box.run("true")),
    ]);
    return 42;
  });
  await task("after").run("true");
  assert.equal(value, 42, "group() returns what its function returns");
  assert.deepEqual(groups, [
    { name: "outer" },
    { name: "left", parentId: "group-1" },
    { name: "right", parentId: "group-1" },
  ]);
  const groupOf = Object.fromEntries(tasks.map((request) => [request.name, request.groupId]));
  assert.deepEqual(groupOf, { a: "group-1", "in-left": "group-2", after: undefined });
  assert.equal(execs[0].groupId, "group-3");
  assert.deepEqual(ends.map(([id]) => id).sort(), ["group-1", "group-2", "group-3"]);
  assert.ok(ends.every(([, outcome]) => outcome === "success"));
  installHost(undefined);
});

Deno.test("group(): a throw ends the group as failed and is rethrown unchanged", async () => {
  const { ends } = recordingHost();
  const thrown = new Error("boom");
  await assert.rejects(
    group("g", () => {
      throw thrown;
    }),
    (error) => error === thrown,
  );
  assert.deepEqual(ends, [["group-1", "failure"]]);
  await assert.rejects(group("", () => {}), /group\(\) needs a non-empty name/);
  await assert.rejects(
    group("g", undefined as never),
    /group\(\) needs a name and a function/,
  );
  installHost(undefined);
});

Deno.test("TaskError of a retried task says how many attempts ran", () => {
  const result: TaskResult = {
    name: "flaky",
    id: "flaky-1",
    code: 1,
    stdout: "",
    stderr: "",
    status: "failure",
    durationMs: 3,
    attempts: 3,
  };
  assert.equal(
    new TaskError(result).message,
    'task "flaky" failed with exit code 1 (after 3 attempts)',
  );
  assert.equal(
    new TaskError({ ...result, attempts: 1 }).message,
    'task "flaky" failed with exit code 1',
  );
});
