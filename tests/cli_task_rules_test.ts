/**
 * Rules the runner applies to every task whatever the driver, through `pocketci run` on the
 * native driver: an unawaited task fails the run, `sh()` stops at a failing line, `.privileged()`
 * needs `--allow-privileged`, image references are checked, and the summary table's rows.
 *
 * @module
 */

import assert from "node:assert/strict";
import { runCli, tempProject } from "./helpers/cli.ts";

async function run(pipeline: string, args: string[] = []) {
  const dir = await tempProject({ "pipeline.ts": pipeline });
  try {
    return await runCli(["run", `${dir}/pipeline.ts`, ...args], {
      env: { POCKETCI_STATE_DIR: `${dir}/.state` },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The summary table's rows (header first), split into cells. */
function summary(stderr: string): string[][] {
  const lines = stderr.split("\n");
  const rows = lines.slice(lines.findIndex((line) => line.startsWith("TASK ")));
  return rows.slice(0, rows.indexOf("")).map((line) => line.trim().split(/\s{2,}/));
}

Deno.test("run: a task still running when the pipeline returns fails the run, naming it and saying to await it", async () => {
  const result = await run(`
import { pipeline, task } from "pocketci";
export default pipeline("forgot", async () => {
  task("slow-build").run("sleep", "30");
  await task("quick").run("true");
});`);
  assert.equal(result.code, 1, result.stderr);
  const errors = result.stderr.split("\n").filter((line) => line.startsWith("error: "));
  assert.deepEqual(errors, [
    'error: the pipeline function returned while task "slow-build" was still running (now cancelled): `await` it, or mark it .background() to let it be cancelled when the pipeline ends',
  ]);
  assert.match(result.stderr, /pipeline failed/);
  assert.match(result.stderr, /^slow-build\s+cancelled/m);
});

Deno.test("run: several unawaited tasks and sandbox calls are all named", async () => {
  const result = await run(`
import { pipeline, sandbox, task } from "pocketci";
export default pipeline("forgot", async () => {
  const box = await sandbox("dev").start();
  task("a").run("sleep", "30");
  task("b").run("sleep", "30");
  box.run("sleep", "30");
  await new Promise((resolve) => setTimeout(resolve, 200));
});`);
  assert.equal(result.code, 1, result.stderr);
  assert.match(
    result.stderr,
    /^error: the pipeline function returned while tasks "a", "b", "dev" were still running \(now cancelled\): `await` them/m,
  );
});

Deno.test("run: .background() and .allowFailure() tasks may outlive the pipeline; the run succeeds", async () => {
  const result = await run(`
import { pipeline, sandbox, task } from "pocketci";
export default pipeline("bg", async () => {
  task("server").background().run("sleep", "30");
  task("optional").allowFailure().run("sleep", "30");
  const box = await sandbox("dev").start();
  box.background().run("sleep", "30");
  await task("main").run("true");
});`);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /pipeline succeeded/);
  assert.match(result.stderr, /^server\s+cancelled/m, "cancelled when the pipeline returned");
});

Deno.test("run: sh() stops at the first failing line (exit 1, the next line never runs); run('sh', '-c') opts out", async () => {
  const result = await run(`
import { pipeline, task } from "pocketci";
export default pipeline("sh", async () => {
  const stopped = await task("script").allowFailure().sh("echo one\\nfalse\\necho two");
  console.log("code=" + stopped.code + " out=" + JSON.stringify(stopped.stdout));
  const unset = await task("unset").allowFailure().sh('echo "$NOT_SET_ANYWHERE"; echo after');
  console.log("unset=" + unset.code + " out=" + JSON.stringify(unset.stdout));
  const plain = await task("plain").run("sh", "-c", "false\\necho still-runs");
  console.log("plain=" + plain.code + " out=" + JSON.stringify(plain.stdout));
  const optOut = await task("opt-out").sh("set +e\\nfalse\\necho went-on");
  console.log("optout=" + optOut.code + " out=" + JSON.stringify(optOut.stdout));
});`);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^code=1 out="one\\n"$/m);
  assert.match(result.stdout, /^unset=[1-9]\d* out=""$/m);
  assert.match(result.stdout, /^plain=0 out="still-runs\\n"$/m);
  assert.match(result.stdout, /^optout=0 out="went-on\\n"$/m);
  assert.match(result.stderr, /^▶ script: sh -c echo one; false; echo two$/m, "no prelude shown");
});

Deno.test("run: .privileged() is an error naming --allow-privileged unless the operator grants it", async () => {
  const pipeline = `
import { pipeline, task } from "pocketci";
export default pipeline("priv", async () => {
  const r = await task("priv").privileged().run("true").catch((e) => e.result);
  console.log("status=" + r.status + " error=" + r.error);
});`;
  const denied = await run(pipeline);
  assert.equal(denied.code, 0, denied.stderr);
  assert.match(
    denied.stdout,
    /^status=error error=\.privileged\(\) needs the operator's grant: pass --allow-privileged to pocketci run \(or remove \.privileged\(\)\)$/m,
  );
  // With the grant the check passes and the native driver says it cannot run privileged tasks.
  const granted = await run(pipeline, ["--allow-privileged"]);
  assert.match(
    granted.stdout,
    /^status=error error=the native driver does not support privileged/m,
  );
  const bad = await run(pipeline, ["--allow-privileged=no"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--allow-privileged takes no value/);
});

Deno.test("run: a malformed image is the task's error naming the image and the form, on native too", async () => {
  const result = await run(`
import { pipeline, task } from "pocketci";
export default pipeline("img", async () => {
  for (const image of ["/etc/passwd", "busybox; rm", "BusyBox"]) {
    const r = await task("t").image(image).run("true").catch((e) => e.result);
    console.log(r.status + ": " + r.error);
  }
});`);
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split("\n");
  assert.equal(lines.length, 3, result.stdout);
  for (const [index, image] of ["/etc/passwd", "busybox; rm", "BusyBox"].entries()) {
    assert.ok(lines[index].startsWith(`error: image ${JSON.stringify(image)} is not a valid`));
    assert.match(lines[index], /use \[REGISTRY\[:PORT\]\/\]NAME\[:TAG\]\[@sha256:DIGEST\]/);
  }
});

Deno.test("run: the summary lists tasks in start order, a queued task the run never started as skipped, and the driver once", async () => {
  const result = await run(
    `
import { pipeline, sandbox, task } from "pocketci";
export default pipeline("order", async () => {
  const box = await sandbox("box").start();
  await box.sh("echo in the box");
  await Promise.all([
    task("first").run("sleep", "30"),
    task("second").run("true"),
    task("third").run("true"),
  ]);
});`,
    ["--parallelism", "1", "--timeout", "2s"],
  );
  assert.equal(result.code, 124, result.stderr);
  assert.match(result.stderr, /^▶ box: sh -c echo in the box$/m, "a sandbox call's start line");
  const rows = summary(result.stderr);
  assert.deepEqual(rows[0], ["TASK", "STATUS", "CODE", "TOTAL", "RUN", "(driver: native)"]);
  assert.deepEqual(rows.slice(1).map((row) => [row[0], row[1]]), [
    ["box", "success"],
    ["first", "cancelled"],
    ["second", "skipped"],
    ["third", "skipped"],
  ]);
  assert.equal(rows[3][2], "-", "no exit code");
  assert.equal(rows[3][3], "-", "no durations");
});
