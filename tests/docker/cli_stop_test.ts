/**
 * Stopping docker runs through the CLI: Ctrl-C during an image pull, a second Ctrl-C, `--grace`,
 * and the launcher killed with `kill -9`; nothing may be left behind.
 *
 * @module
 */

import assert from "node:assert/strict";
// @ts-types="npm:@types/dockerode@^3"
import Docker from "dockerode";
import { LABEL } from "../../drivers/docker/labels.ts";
import { runCli, tempProject } from "../helpers/cli.ts";
import {
  childProcesses,
  eventually,
  processAlive,
  processesMentioning,
  readText,
  spawnCli,
  within,
} from "../helpers/processes.ts";
import { ignoreDocker } from "./engine_fixture.ts";

const docker = new Docker({ socketPath: "/var/run/docker.sock" });

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({
    name: `docker cli: ${name}`,
    ignore: ignoreDocker,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });

async function project(pipeline: string) {
  const dir = await tempProject({ "pipeline.ts": pipeline });
  return { dir, env: { POCKETCI_STATE_DIR: `${dir}/.state` } };
}

interface JsonEvent {
  readonly type: string;
  readonly [key: string]: unknown;
}

function events(stdout: string): JsonEvent[] {
  return stdout.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line));
}

function runIdOf(stdout: string): string {
  const start = events(stdout).find((event) => event.type === "run.start");
  assert.ok(start, `no run.start in ${stdout}`);
  return start.runId as string;
}

function taskEnd(stdout: string, name: string): JsonEvent {
  const end = events(stdout).find((event) => event.type === "task.end" && event.name === name);
  assert.ok(end, `no task.end for ${name} in ${stdout}`);
  return end;
}

/** Containers, volumes and networks still labelled with `runId`. */
async function leftovers(runId: string): Promise<string[]> {
  const filters = { label: [`${LABEL.run}=${runId}`] };
  const containers = await docker.listContainers({ all: true, filters });
  const volumes = (await docker.listVolumes({ filters })).Volumes ?? [];
  const networks = await docker.listNetworks({ filters });
  return [
    ...containers.map((c) => `container ${c.Names[0]}`),
    ...volumes.map((v) => `volume ${v.Name}`),
    ...networks.map((n) => `network ${n.Name}`),
  ];
}

// Ignores SIGTERM (sleep inherits the ignored signal); "ready" is split in the command so that
// only the task's output matches `"data":"ready`.
const STUBBORN = `
import { pipeline, task } from "pocketci";
export default pipeline("stubborn", async () => {
  await task("stubborn").image("busybox:latest").sh("trap '' TERM; echo re''ady; sleep 60");
});`;
const READY = `"data":"ready`;

test("Ctrl-C during an image pull cancels the pull and exits at once, leaving nothing", async () => {
  // A registry on loopback (plain HTTP for the engine) that answers the ping and never answers
  // the manifest request, as a stalled registry would. (The engine, 20.10 here, keeps its own
  // request to the registry after the client closed the pull: only the run's side is checked.)
  let manifestAsked!: () => void;
  const asked = new Promise<void>((resolve) => manifestAsked = resolve);
  const release = new AbortController();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    if (new URL(request.url).pathname === "/v2/") {
      return new Response("{}", { headers: { "Content-Type": "application/json" } });
    }
    manifestAsked();
    return new Promise<Response>((resolve) => {
      const answer = () => resolve(new Response("{}", { status: 404 }));
      request.signal.addEventListener("abort", answer);
      release.signal.addEventListener("abort", answer);
    });
  });
  const image = `127.0.0.1:${server.addr.port}/pocketci/stalled:1`;
  const { dir, env } = await project(`
import { pipeline, task } from "pocketci";
export default pipeline("pull", async () => {
  await task("pulling").image(${JSON.stringify(image)}).sh("true");
});`);
  const launcher = spawnCli(["run", "--json", "--driver=docker", `${dir}/pipeline.ts`], env);
  const stdout = new Response(launcher.stdout).text();
  const stderr = new Response(launcher.stderr).text();
  try {
    assert.equal(await within(60_000, asked.then(() => "asked"), "never"), "asked");
    const [runner] = await childProcesses(launcher.pid, "runner/child.ts");
    assert.ok(runner, "found the runner child");
    launcher.kill("SIGINT");
    const status = await within(20_000, launcher.status, undefined);
    assert.ok(status, "the run waited for the stalled pull after Ctrl-C");
    assert.equal(status.code, 130, await stderr);
    const out = await stdout;
    const end = taskEnd(out, "pulling");
    assert.equal(end.status, "cancelled", JSON.stringify(end));
    assert.match(String(end.error), /pull of image .* was cancelled/);
    assert.deepEqual(await leftovers(runIdOf(out)), []);
    assert.equal(await processAlive(runner), false, "the runner child is gone");
    await eventually(
      "no process of the run (runner, pipeline) to remain",
      async () => (await processesMentioning(dir)).length === 0,
    );
  } finally {
    try {
      launcher.kill("SIGKILL");
    } catch {
      // already exited
    }
    await launcher.status;
    release.abort();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

test("a second Ctrl-C kills a container that ignores SIGTERM at once, whatever the grace", async () => {
  const { dir, env } = await project(STUBBORN);
  const started = performance.now();
  const result = await runCli([
    "run",
    "--json",
    "--driver=docker",
    "--grace=60s",
    `${dir}/pipeline.ts`,
  ], {
    env,
    signal: { name: "SIGINT", when: READY, repeatAfterMs: 700 },
  });
  const elapsed = performance.now() - started;
  assert.equal(result.code, 130, result.stderr);
  const end = taskEnd(result.stdout, "stubborn");
  assert.deepEqual([end.status, end.code], ["cancelled", 137], "killed by SIGKILL");
  assert.ok(elapsed < 30_000, `the run took ${elapsed} ms: the second Ctrl-C waited for the grace`);
  assert.deepEqual(await leftovers(runIdOf(result.stdout)), []);
  await Deno.remove(dir, { recursive: true });
});

test("--grace=1s: a container that ignores SIGTERM is killed with SIGKILL after it", async () => {
  const { dir, env } = await project(STUBBORN);
  const started = performance.now();
  const result = await runCli([
    "run",
    "--json",
    "--driver=docker",
    "--grace=1s",
    `${dir}/pipeline.ts`,
  ], {
    env,
    signal: { name: "SIGTERM", when: READY },
  });
  const elapsed = performance.now() - started;
  assert.equal(result.code, 143, result.stderr);
  const end = taskEnd(result.stdout, "stubborn");
  assert.deepEqual([end.status, end.code], ["cancelled", 137], "killed by SIGKILL");
  assert.ok(elapsed < 9_000, `the run took ${elapsed} ms: it waited for the default 10 s grace`);
  assert.deepEqual(await leftovers(runIdOf(result.stdout)), []);
  await Deno.remove(dir, { recursive: true });
});

test("kill -9 of the launcher: the runner child stops the container, removes the run's resources and exits", async () => {
  const { dir, env } = await project(`
import { pipeline, task, volume } from "pocketci";
export default pipeline("orphan", async () => {
  const v = await volume("v");
  await task("long").image("busybox:latest").mount(v, "v").sh("echo re''ady; sleep 60");
});`);
  const launcher = spawnCli(["run", "--json", "--driver=docker", `${dir}/pipeline.ts`], env);
  const stderr = new Response(launcher.stderr).text();
  const { text, reader } = await readText(launcher.stdout, READY);
  const runId = runIdOf(text.slice(0, text.lastIndexOf("\n")));
  const [runner] = await childProcesses(launcher.pid, "runner/child.ts");
  assert.ok(runner, "found the runner child");
  assert.equal((await leftovers(runId)).filter((r) => r.startsWith("container")).length > 0, true);

  launcher.kill("SIGKILL");
  await launcher.status;
  await eventually(
    "the run's containers, volume and network to be removed",
    async () => (await leftovers(runId)).length === 0,
  );
  await eventually("the runner child to exit", async () => !(await processAlive(runner)));
  await eventually(
    "no process of the run (runner, pipeline) to remain",
    async () => (await processesMentioning(dir)).length === 0,
  );
  let rest = "";
  const decoder = new TextDecoder();
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    rest += decoder.decode(chunk.value, { stream: true });
  }
  await stderr;
  const stopped = events(text + rest);
  assert.ok(
    stopped.some((event) => /the launcher \(pocketci run\) is gone/.test(String(event.message))),
    "the run said why it stopped",
  );
  assert.equal(stopped.at(-1)?.type, "run.end");
  assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/.state/runs`)), [], "journal closed");
  await Deno.remove(dir, { recursive: true });
});
