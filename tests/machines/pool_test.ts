/**
 * The shared machine pool against both fake providers, with real machines (sshd on loopback
 * forwarding the local Docker engine): a full lifecycle (create → running → SSH → Docker → task
 * → delete), reuse across runs without a create call, idle claims before creates, a claim race,
 * max_workers waits and wait_timeout, a machine that never becomes reachable, 429 storms, aborts
 * during provisioning, and reconciliation.
 *
 * @module
 */

import assert from "node:assert/strict";
import { OutputCollector } from "../conformance/driver_suite.ts";
import type { DockerDriver } from "../../drivers/docker/driver.ts";
import { ignore, type Kind, KINDS, leftovers, problem, startFake, startRun } from "./harness.ts";

async function runEcho(docker: DockerDriver, text: string): Promise<string> {
  const out = new OutputCollector();
  const task = await docker.startTask({
    id: `t-${crypto.randomUUID().slice(0, 6)}`,
    name: "echo",
    image: "busybox:latest",
    command: ["echo", text],
    env: {},
    mounts: [],
  }, out.sink);
  assert.equal((await task.wait()).code, 0);
  await task.remove();
  return out.stdout;
}

function test(name: string, fn: (kind: Kind) => Promise<void>): void {
  for (const kind of KINDS) {
    Deno.test({
      name: `machines (${kind}): ${name}`,
      ignore,
      sanitizeResources: false,
      sanitizeOps: false,
      fn: async () => {
        if (problem) throw new Error(problem);
        await fn(kind);
      },
    });
  }
}

test("a machine is created, runs a task over SSH and is deleted with its volume and key", async (kind) => {
  const fake = startFake(kind);
  const stateDir = await Deno.makeTempDir();
  const run = await startRun(kind, fake, { namespace: "ns-life", stateDir });
  try {
    const lease = await run.pool.acquire({ cpu: 0, memoryBytes: 0 });
    assert.equal(await runEcho(lease.docker, "hello from the machine"), "hello from the machine\n");
    assert.equal(leftovers(fake).machines, 1);
    assert.equal(leftovers(fake).volumes, 1);
    await lease.docker.close();
    await run.pool.release(lease);
    assert.deepEqual(leftovers(fake), { machines: 0, volumes: 0, keys: 0, sshd: 0 });
    assert.deepEqual([...run.ctx.live.values()].filter((r) => r.kind !== "dir"), []);
    assert.ok(run.lines.some((l) => /running at 127\./.test(l)), run.lines.join("\n"));
    assert.ok(run.lines.some((l) => /ready in .*SSH .*Docker/.test(l)), run.lines.join("\n"));
  } finally {
    await run.ctx.dispose();
    await fake.close();
    await Deno.remove(stateDir, { recursive: true });
  }
});
