/**
 * The driver conformance suite on the hetzner driver against the fake hetzner API
 * (tests/fakes/cloud), whose machines are real: sshd on a loopback address with the host key
 * the driver generated, forwarding the local Docker engine. `reuse_worker=true`, so a
 * namespace's caches survive on its parked machine; the last test removes what is parked the way
 * `pocketci gc` does and checks that nothing is left.
 *
 * @module
 */

import assert from "node:assert/strict";
import { hetznerFactory } from "../../drivers/hetzner/factory.ts";
import { maintenanceContext } from "../../runner/gc.ts";
import { FakeHetzner } from "../fakes/cloud/hetzner.ts";
import { enginePrivileged } from "../docker/engine_fixture.ts";
import { ignore, problem } from "../machines/harness.ts";
import { defineDriverConformance } from "./driver_suite.ts";

Deno.test({
  name: "hetzner: sshd and the local engine are there (the fake's machines)",
  ignore,
  fn: () => {
    if (problem) throw new Error(problem);
  },
});

if (!ignore) {
  const fake = new FakeHetzner();
  Deno.env.set("HETZNER_API_URL", fake.url);
  const config = { token: fake.token, reuse_worker: true, max_workers: 3 };
  const namespaces = new Map<string, string>();
  const privileged = await enginePrivileged();
  defineDriverConformance({
    name: "hetzner",
    createDriver: async (ctx) => {
      namespaces.set(ctx.namespace, ctx.stateDir);
      const driver = await hetznerFactory.create(config, ctx);
      if (privileged) return driver;
      // The fake's machines use the local engine, which may not start privileged containers (a
      // real machine's engine can): the suite then checks the refusal instead, as for docker.
      return {
        name: driver.name,
        capabilities: { ...driver.capabilities, privileged: false },
        startTask: (spec, output) => driver.startTask(spec, output),
        attachTask: (id, output) => driver.attachTask(id, output),
        createVolume: (spec) => driver.createVolume(spec),
        listCaches: (name) => driver.listCaches!(name),
        removeVolume: (volume) => driver.removeVolume(volume),
        putArchive: (volume, tar, path) => driver.putArchive(volume, tar, path),
        getArchive: (volume, paths) => driver.getArchive(volume, paths),
        startSandbox: (spec) => driver.startSandbox(spec),
        close: () => driver.close(),
      };
    },
    maintenance: (ctx) => hetznerFactory.maintenance!(config, ctx),
    image: "busybox:latest",
    absoluteMounts: true,
    tasksArePid1: false,
  });
  Deno.test({
    name: "hetzner: the conformance suite left only parked machines, which gc's removal deletes",
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      try {
        for (const [namespace, stateDir] of namespaces) {
          const maintenance = await hetznerFactory.maintenance!(
            config,
            maintenanceContext(stateDir, namespace),
          );
          for (const resource of await maintenance.listResources()) {
            if (resource.kind === "machine") {
              assert.equal(resource.detail?.state, "idle", `${resource.id} was left busy`);
            }
            await maintenance.removeResource(resource);
          }
        }
        assert.equal(fake.servers.size, 0, "servers remain");
        assert.equal(fake.volumes.size, 0, "volumes remain");
        assert.equal(fake.liveMachineProcesses, 0, "sshd processes remain");
      } finally {
        await fake.close();
      }
    },
  });
}
