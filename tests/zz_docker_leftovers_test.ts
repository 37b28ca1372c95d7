/**
 * Runs last (file order): after every other test, no container, volume or network with
 * PocketCI's labels that the test run created may remain on the local engine, except caches
 * (which only `gc` removes). Resources older than this test process are not the run's doing
 * and are ignored.
 *
 * @module
 */

import assert from "node:assert/strict";
// @ts-types="npm:@types/dockerode@^3"
import Docker from "dockerode";
import { LABEL } from "../drivers/docker/labels.ts";
import { assertEngine, ignoreDocker } from "./docker/engine_fixture.ts";

Deno.test({
  name:
    "docker: the test run left no labelled containers, volumes or networks behind (caches excepted)",
  ignore: ignoreDocker,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    assertEngine();
    const since = performance.timeOrigin - 1000;
    const docker = new Docker({ socketPath: "/var/run/docker.sock" });
    const filters = { label: [`${LABEL.managed}=true`] };
    const containers = (await docker.listContainers({ all: true, filters }))
      .filter((c) => c.Created * 1000 >= since)
      .map((c) => `container ${c.Names[0]} (${c.State})`);
    const volumes = ((await docker.listVolumes({ filters })).Volumes ?? [])
      .filter((v) => v.Labels?.[LABEL.kind] !== "cache")
      .filter((v) => Date.parse((v as { CreatedAt?: string }).CreatedAt ?? "") >= since)
      .map((v) => `volume ${v.Name}`);
    const networks = (await docker.listNetworks({ filters }))
      .filter((n) => Date.parse(n.Created ?? "") >= since)
      .map((n) => `network ${n.Name}`);
    assert.deepEqual([...containers, ...volumes, ...networks], []);
  },
});
