/**
 * The service conformance checks on the k8s driver against the fake API server of
 * `tests/fakes/kube`: services are pods running the image's own ENTRYPOINT and CMD, probed through
 * `pods/portforward` and `pods/exec`, and reached by tasks at their name (`hostAliases`). One fake
 * cluster serves the file; the last test shuts it down and checks nothing was left.
 *
 * @module
 */

import assert from "node:assert/strict";
import { k8sFactory } from "../../drivers/k8s/factory.ts";
import { LABEL, labelValue } from "../../drivers/k8s/names.ts";
import { startFakeKube } from "../fakes/kube/server.ts";
import { TEST_IMAGE } from "../docker/engine_fixture.ts";
import { assertKube, ignoreKube } from "../k8s/fixture.ts";
import { defineServiceConformance } from "./service_suite.ts";
import { BUSYBOX_SERVICES } from "./docker_service_helpers.ts";
import { waitReady } from "../../runner/readiness.ts";
import { createTestContext } from "./context.ts";
import { OutputCollector } from "./driver_suite.ts";

Deno.test({ name: "k8s services: the local engine answers", ignore: ignoreKube, fn: assertKube });

if (!ignoreKube) {
  const kube = await startFakeKube();
  let closed = false;
  globalThis.addEventListener("unload", () => {
    if (!closed) kube.removeSync();
  });
  const config = { kubeconfig: kube.kubeconfig, namespace: "default", start_timeout: "1m" };
  defineServiceConformance({
    name: "k8s",
    createDriver: (ctx) => k8sFactory.create(config, ctx),
    ...BUSYBOX_SERVICES,
    publishesPorts: false,
    remains: (_ctx, handle) =>
      Promise.resolve(
        kube.store.list("pods", "default")
          .filter((pod) => pod.metadata.labels?.[LABEL.task] === labelValue(handle.id))
          .map((pod) => pod.metadata.name as string),
      ),
  });
  Deno.test("k8s services: two runs in one namespace each have a service named db; each task reaches its own", async () => {
    const runs = await Promise.all([0, 1].map(async (i) => {
      const ctx = await createTestContext();
      const driver = await k8sFactory.create(config, ctx);
      const page = `run${i}`;
      const svc = await driver.startService!({
        id: `db-${i}-${crypto.randomUUID().slice(0, 6)}`,
        name: "db",
        image: TEST_IMAGE,
        command: [
          "sh",
          "-c",
          `mkdir -p /www && echo ${page} > /www/index.html && exec httpd -f -p 8080 -h /www`,
        ],
        env: {},
        mounts: [],
        ports: [],
      }, () => {});
      await waitReady(svc, {
        probe: { tcp: 8080 },
        timeoutMs: 15_000,
        intervalMs: 100,
        exited: svc.wait(),
        signal: new AbortController().signal,
      });
      return { ctx, driver, page };
    }));
    try {
      for (const run of runs) {
        const output = new OutputCollector();
        const fetch = await run.driver.startTask({
          id: `fetch-${crypto.randomUUID().slice(0, 6)}`,
          name: "fetch",
          image: TEST_IMAGE,
          command: ["wget", "-qO-", "http://db:8080/"],
          env: {},
          mounts: [],
        }, output.sink);
        assert.equal((await fetch.wait()).code, 0, output.stderr);
        assert.equal(output.stdout.trim(), run.page, "a task reached another run's service");
        await fetch.remove();
      }
    } finally {
      for (const run of runs) {
        assert.deepEqual((await run.driver.close()).failed, []);
        await run.ctx.dispose();
      }
    }
  });

  Deno.test("k8s services: the fake cluster shuts down with no pod left", async () => {
    assert.deepEqual(kube.store.list("pods", "default").map((p) => p.metadata.name), []);
    closed = true;
    await kube.close();
  });
}
