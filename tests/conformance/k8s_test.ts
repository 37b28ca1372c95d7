/**
 * The driver conformance suite on the k8s driver, against the fake API server of
 * `tests/fakes/kube` (pods run on the local dockerd). One fake cluster serves every test of the
 * file; the last test shuts it down and checks nothing was left on the engine.
 *
 * @module
 */

import assert from "node:assert/strict";
import { k8sFactory } from "../../drivers/k8s/factory.ts";
import { startFakeKube } from "../fakes/kube/server.ts";
import { enginePrivileged } from "../docker/engine_fixture.ts";
import { assertKube, ignoreKube } from "../k8s/fixture.ts";
import { defineDriverConformance } from "./driver_suite.ts";

Deno.test({ name: "k8s: the local engine answers", ignore: ignoreKube, fn: assertKube });

if (!ignoreKube) {
  const kube = await startFakeKube();
  // A filtered run never reaches the last test: remove the cluster's containers anyway.
  let closed = false;
  globalThis.addEventListener("unload", () => {
    if (!closed) kube.removeSync();
  });
  const config = {
    kubeconfig: kube.kubeconfig,
    namespace: "default",
    start_timeout: "1m",
    volume_size: "1Gi",
  };
  // Pods run on the local engine: one that cannot start privileged containers makes the fake
  // fail such a pod (as a node would), which the driver reports as UnsupportedError.
  const privileged = await enginePrivileged();
  defineDriverConformance({
    name: "k8s",
    createDriver: async (ctx) => {
      const driver = await k8sFactory.create(config, ctx);
      if (privileged) return driver;
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
    maintenance: (ctx) => k8sFactory.maintenance!(config, ctx),
    image: "busybox:latest",
    absoluteMounts: true,
    tasksArePid1: false,
    userNames: false,
  });
  Deno.test("k8s: the fake cluster shuts down and leaves no container, volume or network", async () => {
    const network = kube.network;
    await kube.close();
    closed = true;
    const out = await new Deno.Command("docker", {
      args: ["ps", "-aq", "--filter", `network=${network}`],
    }).output();
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "");
  });
}
