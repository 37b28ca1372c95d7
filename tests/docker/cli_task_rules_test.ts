/**
 * The runner's per-task rules on the docker driver, through `pocketci run --driver=docker`:
 * malformed image references are the task's error (never a crash, never blamed on the DSN's
 * host), `.privileged()` creates no container without `--allow-privileged`, and `sh()` stops at a
 * failing line in tasks and sandbox calls, with pipefail in busybox's shell.
 *
 * @module
 */

import assert from "node:assert/strict";
// @ts-types="npm:@types/dockerode@^3"
import Docker from "dockerode";
import type { DriverError } from "../../drivers/contract.ts";
import { LABEL } from "../../drivers/docker/labels.ts";
import { dockerFactory } from "../../drivers/docker/factory.ts";
import { ImageManager } from "../../drivers/docker/images.ts";
import { createTestContext } from "../conformance/context.ts";
import { OutputCollector } from "../conformance/driver_suite.ts";
import { runCli, tempProject } from "../helpers/cli.ts";
import { ignoreDocker, TEST_IMAGE } from "./engine_fixture.ts";

const docker = new Docker({ socketPath: "/var/run/docker.sock" });

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({
    name: `docker run rules: ${name}`,
    ignore: ignoreDocker,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });

async function run(pipeline: string, args: string[] = []) {
  const dir = await tempProject({ "pipeline.ts": pipeline });
  try {
    return await runCli(["run", `${dir}/pipeline.ts`, "--driver=docker", ...args], {
      env: { POCKETCI_STATE_DIR: `${dir}/.state` },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The `--json` events of a run, parsed. */
function events(stdout: string): Record<string, unknown>[] {
  return stdout.trim().split("\n").map((line) => JSON.parse(line));
}

test("a malformed image is the task's error naming it and the form; the run goes on, nothing crashes", async () => {
  const images = ["/etc/passwd", "busybox; rm", "BusyBox", "a//b", "busybox@sha256:abc"];
  const result = await run(`
import { pipeline, sandbox, task } from "pocketci";
export default pipeline("images", async () => {
  for (const image of ${JSON.stringify(images)}) {
    const r = await task("t").image(image).run("true").catch((e) => e.result);
    console.log(r.status + ": " + r.error);
  }
  await sandbox("s").image("/etc/passwd").start().catch((e) => console.log("sandbox: " + e.message));
  console.log("still " + (await task("ok").image("${TEST_IMAGE}").run("echo", "running")).stdout);
});`);
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split("\n");
  for (const [index, image] of images.entries()) {
    assert.ok(
      lines[index].startsWith(
        `error: image ${JSON.stringify(image)} is not a valid image reference`,
      ),
      lines[index],
    );
    assert.match(lines[index], /use \[REGISTRY\[:PORT\]\/\]NAME\[:TAG\]\[@sha256:DIGEST\]/);
  }
  assert.match(lines[images.length], /^sandbox: .*image "\/etc\/passwd" is not a valid image/);
  assert.match(result.stdout, /^still running$/m);
  assert.doesNotMatch(result.stdout + result.stderr, /getaddrinfo|Uncaught|DSN|DOCKER_HOST/);
});

test("given to the driver directly, a malformed image is refused by the driver and an engine refusal is blamed on the image, never on the DSN's host", async () => {
  const ctx = await createTestContext();
  const driver = await dockerFactory.create({}, ctx);
  try {
    for (const image of ["/etc/passwd", "a//b", "busybox; rm", "BusyBox"]) {
      const spec = {
        id: `bad-${crypto.randomUUID().slice(0, 6)}`,
        name: "bad",
        image,
        command: ["true"],
        env: {},
        mounts: [],
      };
      const error = await driver.startTask(spec, new OutputCollector().sink).then(
        () => undefined,
        (error: DriverError) => error,
      );
      assert.ok(error !== undefined, `the driver accepted ${image}`);
      assert.equal(error.code, "invalid");
      assert.ok(
        error.message.startsWith(`task bad: image ${JSON.stringify(image)} is not a valid`),
        error.message,
      );
    }
  } finally {
    await driver.close();
    await ctx.dispose();
  }
  // Below the driver's own check: what the engine (or its client) refuses names the image.
  const images = new ImageManager(docker);
  for (const [image, said] of [["BusyBox", /lowercase/], ["busybox; rm", /unescaped/i]] as const) {
    const error = await images.ensure(image).then(() => undefined, (error: DriverError) => error);
    assert.ok(error !== undefined, image);
    assert.match(error.message, new RegExp(`^image ${image.replace(/[;]/g, ".")}:latest: `));
    assert.match(error.message, said);
    assert.doesNotMatch(error.message, /DSN|DOCKER_HOST|cannot reach/);
  }
});

test(".privileged() without --allow-privileged creates no container; with it the driver gets the request", async () => {
  const pipeline = `
import { pipeline, task } from "pocketci";
export default pipeline("priv", async () => {
  const r = await task("priv").image("${TEST_IMAGE}").privileged()
    .sh("grep CapEff /proc/self/status").catch((e) => e.result);
  console.log(JSON.stringify({ status: r.status, error: r.error ?? null, stdout: r.stdout }));
  await task("plain").image("${TEST_IMAGE}").run("true");
});`;
  const since = Math.floor(Date.now() / 1000) - 1;
  const denied = await run(pipeline, ["--json"]);
  assert.equal(denied.code, 0, denied.stderr);
  const deniedEvents = events(denied.stdout);
  const log = deniedEvents.find((event) => event.type === "log");
  assert.deepEqual(JSON.parse(String(log?.message)), {
    status: "error",
    error:
      ".privileged() needs the operator's grant: pass --allow-privileged to pocketci run (or remove .privileged())",
    stdout: "",
  });
  const runId = String(deniedEvents.find((event) => event.type === "run.start")?.runId);
  const until = Math.ceil(Date.now() / 1000) + 1;
  const stream = await docker.getEvents({
    since,
    until,
    filters: { type: ["container"], event: ["create"], label: [`${LABEL.run}=${runId}`] },
  });
  let text = "";
  for await (const chunk of stream as AsyncIterable<Uint8Array>) {
    text += new TextDecoder().decode(chunk);
  }
  const created = text.trim().split("\n").filter(Boolean).map((line) => JSON.parse(line));
  const tasks = created.map((event) => String(event.Actor.Attributes[LABEL.task] ?? ""));
  assert.ok(tasks.some((id) => id.startsWith("plain-")), `the plain task ran: ${tasks}`);
  assert.ok(!tasks.some((id) => id.startsWith("priv-")), `a privileged container: ${tasks}`);

  const granted = await run(pipeline, ["--allow-privileged"]);
  assert.equal(granted.code, 0, granted.stderr);
  const outcome = JSON.parse(granted.stdout.split("\n").find((line) => line.startsWith("{"))!);
  // Engines that run inside a container without every capability cannot start privileged
  // containers; the driver then says so. Either way the request reached the driver.
  if (outcome.status === "success") {
    assert.match(outcome.stdout, /CapEff:\s+[0-9a-f]*f{8}/);
  } else {
    assert.match(outcome.error, /cannot start privileged containers/);
  }
});

test("sh() stops at a failing line and fails a failing pipe (busybox has pipefail), in tasks and sandbox calls", async () => {
  const result = await run(`
import { pipeline, sandbox, task, type TaskResult } from "pocketci";
export default pipeline("sh", async () => {
  const t = task("t").image("${TEST_IMAGE}").allowFailure();
  const box = await sandbox("box").image("${TEST_IMAGE}").allowFailure().start();
  const shells: [string, (script: string) => Promise<TaskResult>][] = [
    ["task", (script) => t.sh(script)],
    ["sandbox", (script) => box.sh(script)],
  ];
  for (const [where, sh] of shells) {
    const stopped = await sh("echo one\\nfalse\\necho two");
    const pipe = await sh("false | true; echo after-pipe");
    const optOut = await sh("set +e\\nfalse\\necho went-on");
    console.log(where + " " + JSON.stringify([stopped.code, stopped.stdout, pipe.code, pipe.stdout, optOut.code, optOut.stdout]));
  }
});`);
  assert.equal(result.code, 0, result.stderr);
  for (const where of ["task", "sandbox"]) {
    const line = result.stdout.split("\n").find((text) => text.startsWith(`${where} `));
    assert.deepEqual(JSON.parse(line!.slice(where.length + 1)), [
      1,
      "one\n",
      1,
      "",
      0,
      "went-on\n",
    ], where);
  }
});
