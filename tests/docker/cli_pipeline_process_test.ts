/**
 * The pipeline process failing on the docker driver: the containers it started are
 * stopped and removed as on Ctrl-C.
 *
 * @module
 */

import assert from "node:assert/strict";
// @ts-types="npm:@types/dockerode@^3"
import Docker from "dockerode";
import { LABEL } from "../../drivers/docker/labels.ts";
import { runCli, tempProject } from "../helpers/cli.ts";
import { processesMentioning } from "../helpers/processes.ts";
import { ignoreDocker } from "./engine_fixture.ts";

const docker = new Docker({ socketPath: "/var/run/docker.sock" });

Deno.test({
  name:
    "docker cli: an out-of-memory pipeline exits 1 with run.end; its container, volume and network are removed",
  ignore: ignoreDocker,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tempProject({
      "pipeline.ts": `import { pipeline, task } from "pocketci";
export default pipeline("oom", async () => {
  task("sleeper").image("busybox:latest").sh("echo re''ady; sleep 60").catch(() => {});
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const keep: string[][] = [];
  for (;;) keep.push(new Array(100_000).fill("z".repeat(8) + keep.length));
});`,
    });
    const result = await runCli(
      [
        "run",
        "--no-check",
        "--json",
        "--driver=docker",
        "--pipeline-memory=64MB",
        `${dir}/pipeline.ts`,
      ],
      { env: { POCKETCI_STATE_DIR: `${dir}/.state` } },
    );
    assert.equal(result.code, 1, result.stderr);
    const events = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
    const runId = events.find((event) => event.type === "run.start").runId;
    const end = events.at(-1);
    assert.equal(end.type, "run.end");
    assert.match(end.error, /^the pipeline ran out of memory \(its heap limit is 64 MB;/);
    assert.deepEqual(end.leftovers, []);
    const sleeper = events.find((event) => event.type === "task.end" && event.name === "sleeper");
    assert.equal(sleeper?.status, "cancelled", "the container was running when the pipeline died");
    const filters = { label: [`${LABEL.run}=${runId}`] };
    assert.deepEqual(await docker.listContainers({ all: true, filters }), []);
    assert.deepEqual((await docker.listVolumes({ filters })).Volumes ?? [], []);
    assert.deepEqual(await docker.listNetworks({ filters }), []);
    assert.deepEqual(await processesMentioning(dir), []);
    await Deno.remove(dir, { recursive: true });
  },
});
