/**
 * After the other tests, no container, volume or network with PocketCI's labels that the test
 * run created may remain on the local engine, except caches (which only `gc` removes).
 *
 * Test files may run concurrently, so another file can still be using resources when this one
 * starts. A resource therefore counts as leaked only when it is still there after every test
 * that could own it has had time to finish: the check waits (up to two minutes) until each
 * resource it first saw is gone, and fails with those that never went away. Resources older than
 * this test process are not the run's doing and are ignored.
 *
 * @module
 */

import assert from "node:assert/strict";
// @ts-types="npm:@types/dockerode@^3"
import Docker from "dockerode";
import { LABEL } from "../drivers/docker/labels.ts";
import { assertEngine, ignoreDocker } from "./docker/engine_fixture.ts";

const docker = new Docker({ socketPath: "/var/run/docker.sock" });

/** Labelled containers, volumes (not caches) and networks created since this process started. */
async function labelled(): Promise<Set<string>> {
  const since = performance.timeOrigin - 1000;
  const filters = { label: [`${LABEL.managed}=true`] };
  const containers = (await docker.listContainers({ all: true, filters }))
    .filter((c) => c.Created * 1000 >= since)
    .map((c) => `container ${c.Names[0]} (${c.Id.slice(0, 12)})`);
  const volumes = ((await docker.listVolumes({ filters })).Volumes ?? [])
    .filter((v) => v.Labels?.[LABEL.kind] !== "cache")
    .filter((v) => Date.parse((v as { CreatedAt?: string }).CreatedAt ?? "") >= since)
    .map((v) => `volume ${v.Name}`);
  const networks = (await docker.listNetworks({ filters }))
    .filter((n) => Date.parse(n.Created ?? "") >= since)
    .map((n) => `network ${n.Name} (${n.Id.slice(0, 12)})`);
  return new Set([...containers, ...volumes, ...networks]);
}

Deno.test({
  name:
    "docker: the test run left no labelled containers, volumes or networks behind (caches excepted)",
  ignore: ignoreDocker,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    assertEngine();
    const first = await labelled();
    const deadline = Date.now() + 120_000;
    let remaining = [...first];
    while (remaining.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const now = await labelled();
      remaining = remaining.filter((r) => now.has(r));
    }
    assert.deepEqual(remaining, [], "labelled resources that outlived every test");
  },
});
