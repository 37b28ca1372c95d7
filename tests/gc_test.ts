import assert from "node:assert/strict";
import { readUntil, runCli, tempProject } from "./helpers/cli.ts";
import { parseJournal } from "../runner/state.ts";
import { assertEngine, ignoreDocker } from "./docker/engine_fixture.ts";

const ENTRY = new URL("../pocketci.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function journals(stateDir: string) {
  const found = [];
  for await (const entry of Deno.readDir(`${stateDir}/runs`)) {
    const path = `${stateDir}/runs/${entry.name}`;
    found.push(parseJournal(path, await Deno.readTextFile(path)));
  }
  return found;
}

const LONG_PIPELINE = `import { pipeline, task, volume } from "pocketci";
export default pipeline("long", async () => {
  const v = await volume("v");
  await task("long").mount(v, "v").sh("echo started; sleep 120");
});`;

async function killedRunIsCollected(inProcess: boolean): Promise<void> {
  const dir = await tempProject({ "pipeline.ts": LONG_PIPELINE });
  const stateDir = `${dir}/.state`;
  const env = { POCKETCI_STATE_DIR: stateDir, NO_COLOR: "1" };
  const runner = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-worker-options",
      `--config=${CONFIG}`,
      ENTRY,
      "run",
      ...(inProcess ? ["--in-process"] : []),
      `${dir}/pipeline.ts`,
    ],
    env,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = await readUntil(runner.stdout, "long | started");
  const [journal] = await journals(stateDir);
  const process = journal.outstanding.find((resource) => resource.kind === "process");
  assert.ok(process, "the task's process was recorded");
  const pid = Number(process.id);
  assert.ok(await alive(pid));
  // The narrowed runner child may not read /proc itself; the start time is still
  // recorded (there, in a second record once the reader shell answered).
  await waitFor(
    async () => {
      const [again] = await journals(stateDir);
      const found = again.outstanding.find((resource) => resource.id === process.id);
      return /^\d+$/.test(found?.detail?.startTime ?? "");
    },
    "the task's start time to be recorded",
    5_000,
  );

  // While the run is alive, gc leaves it alone.
  const whileLive = await runCli(["gc"], { env });
  assert.equal(whileLive.code, 0, whileLive.stdout + whileLive.stderr);
  assert.match(whileLive.stdout, /1 live run\(s\) skipped/);
  assert.ok(await alive(pid), "gc must not touch a live run");

  // The runner is the CLI itself with --in-process, else the child it started (the
  // CLI then exits on its own).
  Deno.kill(journal.header!.process.pid, "SIGKILL");
  await runner.status;
  await reader.cancel();
  assert.ok(await alive(pid), "kill -9 of the runner leaves the task running");

  const dry = await runCli(["gc", "--dry-run"], { env });
  assert.equal(dry.code, 0, dry.stdout);
  assert.match(dry.stdout, /would-remove\s+native process/);
  assert.match(dry.stdout, /would-remove\s+native dir/);
  assert.ok(await alive(pid), "--dry-run removes nothing");

  const collected = await runCli(["gc"], { env });
  assert.equal(collected.code, 0, collected.stdout);
  assert.match(collected.stdout, /removed\s+native process/);
  await waitFor(async () => !(await alive(pid)), "the task's process group to be killed");
  assert.deepEqual(await Array.fromAsync(Deno.readDir(`${stateDir}/work`)), []);
  assert.deepEqual(await journals(stateDir), [], "the dead run's journal is gone");

  const again = await runCli(["gc"], { env });
  assert.match(again.stdout, /nothing to collect/);
  await Deno.remove(dir, { recursive: true });
}

Deno.test("gc: removes what a run killed with kill -9 left behind, never a live run's resources", async () => {
  await killedRunIsCollected(true);
});

Deno.test("gc: the same for a run in the narrowed runner child (identity recorded without reading /proc)", async () => {
  await killedRunIsCollected(false);
});

Deno.test("gc: removes caches unused for longer than --cache-ttl", async () => {
  const dir = await tempProject({
    "pipeline.ts": `import { cache, pipeline, task } from "pocketci";
export default pipeline("c", async () => {
  const c = await cache("kept");
  const r = await task("t").mount(c, "c").sh("cat c/f 2>/dev/null || echo miss; echo hit > c/f");
  console.log("cache: " + r.stdout.trim());
});`,
  });
  const env = { POCKETCI_STATE_DIR: `${dir}/.state` };
  const first = await runCli(["run", `${dir}/pipeline.ts`], { env });
  assert.match(first.stdout, /cache: miss/);
  const fresh = await runCli(["gc", "--cache-ttl=1h"], { env });
  assert.match(fresh.stdout, /nothing to collect/);
  assert.match((await runCli(["run", `${dir}/pipeline.ts`], { env })).stdout, /cache: hit/);
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const expired = await runCli(["gc", "--cache-ttl=1s", "--json"], { env });
  assert.equal(expired.code, 0, expired.stdout + expired.stderr);
  const lines = expired.stdout.trim().split("\n").map((line) => JSON.parse(line));
  assert.ok(
    lines.some((line) =>
      line.type === "resource" && line.action === "removed" && line.resource.kind === "cache"
    ),
  );
  assert.match((await runCli(["run", `${dir}/pipeline.ts`], { env })).stdout, /cache: miss/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("gc: bad flags exit 2", async () => {
  assert.equal((await runCli(["gc", "--cache-ttl=soon"])).code, 2);
  assert.equal((await runCli(["gc", "--nope"])).code, 2);
});

Deno.test({
  name: "gc: removes the containers, volumes and networks a killed docker run left",
  ignore: ignoreDocker,
  fn: async () => {
    assertEngine();
    const dir = await tempProject({
      "pipeline.ts": LONG_PIPELINE.replace('task("long")', 'task("long").image("busybox")'),
    });
    const stateDir = `${dir}/.state`;
    const env = { POCKETCI_STATE_DIR: stateDir, NO_COLOR: "1" };
    const runner = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-worker-options",
        `--config=${CONFIG}`,
        ENTRY,
        "run",
        "--in-process",
        "--driver=docker",
        `${dir}/pipeline.ts`,
      ],
      env,
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = await readUntil(runner.stdout, "long | started");
    runner.kill("SIGKILL");
    await runner.status;
    await reader.cancel();
    const [journal] = await journals(stateDir);
    const kinds = journal.outstanding.map((resource) => resource.kind);
    assert.ok(kinds.includes("container") && kinds.includes("volume"), kinds.join(","));
    const collected = await runCli(["gc"], { env });
    assert.equal(collected.code, 0, collected.stdout);
    for (const resource of journal.outstanding) {
      if (resource.kind !== "container" && resource.kind !== "volume") continue;
      const inspect = await new Deno.Command("docker", {
        args: [resource.kind === "container" ? "container" : "volume", "inspect", resource.id],
        stdout: "null",
        stderr: "null",
      }).output();
      assert.equal(inspect.success, false, `${resource.kind} ${resource.id} is gone`);
    }
    assert.deepEqual(await journals(stateDir), []);
    await Deno.remove(dir, { recursive: true });
  },
});
