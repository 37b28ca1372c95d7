/**
 * `pocketci run --driver=native --service-driver=docker` through the CLI (the runner child with
 * the union of both drivers' permissions): Ctrl-C removes the service container, and after
 * `kill -9` of the runner `pocketci gc` (even `gc --driver=docker`) finds the container of the
 * dead run, whose journal names two drivers.
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
} from "../helpers/processes.ts";
import { ignoreDocker, TEST_IMAGE } from "./engine_fixture.ts";

const docker = new Docker({ socketPath: "/var/run/docker.sock" });

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({
    name: `docker cli --service-driver: ${name}`,
    ignore: ignoreDocker,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });

const READY = "SERVICE UP";

/** A pipeline whose docker service a native task reaches, then waits to be stopped. */
const PIPELINE = `
import { pipeline, service, task } from "pocketci";
export default pipeline("svc", async () => {
  const web = await service("web").image(${JSON.stringify(TEST_IMAGE)}).ports(80)
    .run("sh", "-c", "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 80 -h /www")
    .ready({ tcp: 80 }).start();
  await task("client").sh("busybox wget -qO- http://127.0.0.1:" + web.hostPort(80) + "/");
  console.log("${READY}");
  await new Promise((resolve) => setTimeout(resolve, 120_000));
});`;

async function project() {
  const dir = await tempProject({ "pipeline.ts": PIPELINE });
  return { dir, env: { POCKETCI_STATE_DIR: `${dir}/.state`, POCKETCI_NO_AUTO_GC: "1" } };
}

function runIdOf(stdout: string): string {
  for (const line of stdout.split("\n")) {
    if (line.trim() === "") continue;
    const event = JSON.parse(line);
    if (event.type === "run.start") return event.runId;
  }
  throw new Error(`no run.start in ${stdout}`);
}

async function containers(runId: string): Promise<string[]> {
  const found = await docker.listContainers({
    all: true,
    filters: { label: [`${LABEL.run}=${runId}`] },
  });
  return found.map((container) => `${container.Labels[LABEL.kind]} ${container.Id}`);
}

test("Ctrl-C: the native task's run ends 130 and the docker service is removed", async () => {
  const { dir, env } = await project();
  const result = await runCli([
    "run",
    "--json",
    "--driver=native",
    "--service-driver=docker",
    `${dir}/pipeline.ts`,
  ], { env, signal: { name: "SIGINT", when: READY } });
  assert.equal(result.code, 130, result.stderr);
  const runId = runIdOf(result.stdout);
  assert.match(result.stdout, /"type":"task.end"[^\n]*"name":"client"[^\n]*"status":"success"/);
  assert.match(result.stdout, /"type":"service.end"[^\n]*"status":"stopped"/);
  assert.deepEqual(await containers(runId), []);
  await Deno.remove(dir, { recursive: true });
});

test("kill -9 of the runner: gc --driver=docker removes the service container, gc the rest", async () => {
  const { dir, env } = await project();
  const launcher = spawnCli([
    "run",
    "--json",
    "--driver=native",
    "--service-driver=docker",
    `${dir}/pipeline.ts`,
  ], env);
  const stderr = new Response(launcher.stderr).text();
  const { text, reader } = await readText(launcher.stdout, READY);
  const runId = runIdOf(text.slice(0, text.lastIndexOf("\n")));
  try {
    const [runner] = await childProcesses(launcher.pid, "runner/child.ts");
    assert.ok(runner, "found the runner child");
    assert.equal((await containers(runId)).length, 1, "the service container runs");
    const journal = await Deno.readTextFile(`${dir}/.state/runs/${runId}.jsonl`);
    const header = JSON.parse(journal.split("\n")[0]);
    assert.deepEqual([header.driver, header.serviceDriver], ["native", "docker"]);

    Deno.kill(runner, "SIGKILL");
    await launcher.status;
    await eventually("the runner child to be gone", async () => !(await processAlive(runner)));
    assert.equal((await containers(runId)).length, 1, "the container outlived its runner");

    const gcDocker = await runCli(["gc", "--json", "--driver=docker"], { env });
    assert.equal(gcDocker.code, 0, gcDocker.stderr);
    assert.deepEqual(await containers(runId), [], gcDocker.stdout);
    assert.ok(
      await Deno.stat(`${dir}/.state/runs/${runId}.jsonl`).then(() => true, () => false),
      "the journal stays for the native driver's part (the run directory)",
    );
    const gcAll = await runCli(["gc", "--json"], { env });
    assert.equal(gcAll.code, 0, gcAll.stderr);
    assert.equal(
      await Deno.stat(`${dir}/.state/runs/${runId}.jsonl`).then(() => true, () => false),
      false,
      `gc finished the dead run: ${gcAll.stdout}`,
    );
  } finally {
    await reader.cancel().catch(() => {});
    try {
      launcher.kill("SIGKILL");
    } catch {
      // already exited
    }
    await launcher.status;
    await stderr;
    for (const pid of await processesMentioning(dir)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    for (const line of await containers(runId)) {
      await docker.getContainer(line.split(" ")[1]).remove({ force: true }).catch(() => {});
    }
    await Deno.remove(dir, { recursive: true });
  }
});
