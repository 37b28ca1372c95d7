/**
 * How `pocketci run` ends besides success: the launcher killed with `kill -9`, `--grace`,
 * `--timeout` as a hard deadline, timeouts too long for one timer, and `--json` output for
 * failures before the run starts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { groupAlive } from "../drivers/native/process_group.ts";
import { readUntil, runCli, tempProject } from "./helpers/cli.ts";
import {
  childProcesses,
  eventually,
  processAlive,
  processesMentioning,
  spawnCli,
} from "./helpers/processes.ts";

async function project(pipeline: string, extra: Record<string, string> = {}) {
  const dir = await tempProject({ "pipeline.ts": pipeline, ...extra });
  return { dir, env: { POCKETCI_STATE_DIR: `${dir}/.state` } };
}

interface JsonEvent {
  readonly type: string;
  readonly [key: string]: unknown;
}

function events(stdout: string): JsonEvent[] {
  return stdout.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line));
}

function taskEnd(stdout: string, name: string): JsonEvent {
  const end = events(stdout).find((event) => event.type === "task.end" && event.name === name);
  assert.ok(end, `no task.end for ${name} in ${stdout}`);
  return end;
}

// The task ignores SIGTERM (and so does sleep, which inherits the ignored signal); its "ready"
// line is split in the command so that only its output matches `"data":"ready`.
const STUBBORN = `
import { pipeline, task } from "pocketci";
export default pipeline("stubborn", async () => {
  await task("stubborn").sh("trap '' TERM; echo re''ady; sleep 60");
});`;
const READY = `"data":"ready`;

Deno.test("run: kill -9 of the launcher stops the run: the runner child stops its tasks, removes its resources and exits", async () => {
  const { dir, env } = await project(`
import { pipeline, task, volume } from "pocketci";
export default pipeline("orphan", async (ctx) => {
  const v = await volume("v");
  await task("long").mount(v, "v").env({ PIDFILE: ctx.args[0] })
    .sh('echo $$ > "$PIDFILE"; echo started; sleep 60');
});`);
  const pidFile = `${dir}/task.pid`;
  const launcher = spawnCli(["run", `${dir}/pipeline.ts`, "--", pidFile], env);
  const stderr = new Response(launcher.stderr).text();
  const reader = await readUntil(launcher.stdout, "long | started");
  const taskGroup = Number((await Deno.readTextFile(pidFile)).trim());
  const [runner] = await childProcesses(launcher.pid, "runner/child.ts");
  assert.ok(runner, "found the runner child");
  assert.ok(await groupAlive(taskGroup), "the task runs");

  launcher.kill("SIGKILL");
  await launcher.status;
  await eventually(
    "the task's process group to be gone",
    async () => !(await groupAlive(taskGroup)),
  );
  await eventually("the runner child to exit", async () => !(await processAlive(runner)));
  await eventually(
    "no process of the run (runner, pipeline) to remain",
    async () => (await processesMentioning(dir)).length === 0,
  );
  await reader.cancel();

  const text = await stderr;
  assert.match(text, /the launcher \(pocketci run\) is gone: stopping tasks/);
  assert.match(text, /^long\s.*\bcancelled\b/m);
  assert.deepEqual(
    await Array.fromAsync(Deno.readDir(`${dir}/.state/work`)),
    [],
    "work dir removed",
  );
  assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/.state/runs`)), [], "journal closed");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: --grace=1s kills a task that ignores SIGTERM with SIGKILL after the grace, not after 10 s", async () => {
  const { dir, env } = await project(STUBBORN);
  const started = performance.now();
  const result = await runCli(["run", "--json", "--grace=1s", `${dir}/pipeline.ts`], {
    env,
    signal: { name: "SIGTERM", when: READY },
  });
  const elapsed = performance.now() - started;
  assert.equal(result.code, 143, result.stderr);
  const end = taskEnd(result.stdout, "stubborn");
  assert.deepEqual([end.status, end.code], ["cancelled", 137], "killed by SIGKILL");
  assert.ok(elapsed < 9_000, `the run took ${elapsed} ms: it waited for the default 10 s grace`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: --grace must be a duration", async () => {
  const { dir, env } = await project(STUBBORN);
  const result = await runCli(["run", "--grace=soon", `${dir}/pipeline.ts`], { env });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^pocketci run: --grace: invalid duration "soon"/m);
  assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: --timeout is a hard deadline that includes the grace period", async () => {
  const { dir, env } = await project(STUBBORN);
  // The deadline expires with the task still running: it is killed then, not 60 s later.
  let started = performance.now();
  const timedOut = await runCli(
    ["run", "--json", "--timeout=2s", "--grace=60s", `${dir}/pipeline.ts`],
    { env },
  );
  let elapsed = performance.now() - started;
  assert.equal(timedOut.code, 124, timedOut.stderr);
  assert.deepEqual([taskEnd(timedOut.stdout, "stubborn").code], [137]);
  assert.ok(elapsed < 30_000, `the run took ${elapsed} ms: the 60 s grace outlived --timeout`);
  // A Ctrl-C before the deadline gets the grace only up to the deadline.
  started = performance.now();
  const interrupted = await runCli(
    ["run", "--json", "--timeout=4s", "--grace=60s", `${dir}/pipeline.ts`],
    { env, signal: { name: "SIGINT", when: READY } },
  );
  elapsed = performance.now() - started;
  assert.equal(interrupted.code, 130, interrupted.stderr);
  assert.deepEqual([taskEnd(interrupted.stdout, "stubborn").code], [137]);
  assert.ok(elapsed < 30_000, `the run took ${elapsed} ms: the grace outlived --timeout`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test('run: --timeout=597h and .timeout("600h") do not fire at once', async () => {
  const { dir, env } = await project(`
import { pipeline, task } from "pocketci";
export default pipeline("long-timeouts", async () => {
  await task("quick").timeout("600h").sh("sleep 0.3; echo done");
});`);
  const result = await runCli(["run", "--timeout=597h", `${dir}/pipeline.ts`], { env });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /quick \| done/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: --json prints a run.end event for failures before the run starts", async () => {
  const { dir, env } = await project(`import { task } from "pocketci";
export default async () => { await task(42).run("true"); };`);
  const cases: [string, string[], RegExp][] = [
    ["missing file", ["run", "--json", `${dir}/missing.ts`], /does not exist/],
    ["bad flag", ["run", `${dir}/pipeline.ts`, "--no-such-flag", "--json"], /--no-such-flag/],
    [
      "bad driver",
      ["run", "--json", "--driver=nosuchdriver", `${dir}/pipeline.ts`],
      /nosuchdriver/,
    ],
    ["bad grace", ["run", "--json", "--grace=soon", `${dir}/pipeline.ts`], /--grace/],
    ["type error", ["run", "--json", `${dir}/pipeline.ts`], /does not type-check/],
  ];
  for (const [what, args, message] of cases) {
    const result = await runCli(args, { env });
    assert.equal(result.code, 2, `${what}: ${result.stderr}`);
    const lines = result.stdout.trim().split("\n");
    assert.equal(lines.length, 1, `${what}: one event on stdout: ${result.stdout}`);
    const end = JSON.parse(lines[0]);
    assert.equal(end.v, 1, what);
    assert.equal(end.type, "run.end", what);
    assert.ok(!Number.isNaN(Date.parse(end.time)), `${what}: time ${end.time}`);
    assert.deepEqual([end.status, end.exitCode], ["error", 2], what);
    assert.match(end.error, message, what);
    assert.ok(!end.error.includes("\n"), `${what}: one line`);
  }
  // Without --json nothing goes to stdout.
  const plain = await runCli(["run", `${dir}/missing.ts`], { env });
  assert.equal(plain.stdout, "");
  await Deno.remove(dir, { recursive: true });
});
