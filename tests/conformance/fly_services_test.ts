/**
 * The service conformance checks on the fly driver against the fake Machines API: services are
 * machines running the image's own ENTRYPOINT and CMD, their output read from the app logs API,
 * probed through a helper machine on the app's private network (TCP, HTTP) and `exec`, and
 * reached by tasks at their name (hosts lines). The last test checks nothing was left.
 *
 * @module
 */

import assert from "node:assert/strict";
import { flyFactory } from "../../drivers/fly/factory.ts";
import { assertEngine } from "../docker/engine_fixture.ts";
import {
  FAKE_TOKEN,
  fakeLeftovers,
  ignoreFly,
  startFake,
  TEST_IMAGE,
} from "../fly/fake_fixture.ts";
import { DriverError } from "../../drivers/contract.ts";
import { createTestContext } from "./context.ts";
import { defineServiceConformance } from "./service_suite.ts";
import { BUSYBOX_SERVICES } from "./docker_service_helpers.ts";

Deno.test({
  name: "fly services: the local engine answers (the fake's machines)",
  ignore: ignoreFly,
  fn: assertEngine,
});

if (!ignoreFly) {
  const fake = startFake();
  const app = "pocketci-services";
  fake.addApp(app);
  const config = { token: FAKE_TOKEN, app, region: "ord", size: "shared-cpu-1x" };
  defineServiceConformance({
    name: "fly",
    createDriver: (ctx) => flyFactory.create(config, ctx),
    ...BUSYBOX_SERVICES,
    publishesPorts: false,
    remains: (_ctx, handle) =>
      Promise.resolve(
        fake.liveMachines()
          .filter((machine) =>
            (machine.config.metadata as Record<string, string> | undefined)?.pocketci_task ===
              handle.id
          )
          .map((machine) => machine.name),
      ),
  });
  Deno.test("fly services: a name that is not a DNS label never reaches another machine's /etc/hosts", async () => {
    const ctx = await createTestContext();
    const driver = await flyFactory.create(config, ctx);
    try {
      const before = fake.count("POST", /\/machines$/);
      await assert.rejects(
        () =>
          driver.startService!({
            id: "evil",
            name: "db\n10.0.0.1 api.machines.dev",
            image: TEST_IMAGE,
            command: ["sleep", "60"],
            env: {},
            mounts: [],
            ports: [],
          }, () => {}),
        (error: unknown) =>
          error instanceof DriverError && error.code === "invalid" &&
          /is not a DNS label/.test(error.message) && !error.message.includes("\n"),
      );
      assert.equal(fake.count("POST", /\/machines$/), before, "a machine was created");
    } finally {
      assert.deepEqual((await driver.close()).failed, []);
      await ctx.dispose();
    }
  });

  Deno.test("fly services: a task mounting a volume a running service holds fails at once, naming the service", async () => {
    const ctx = await createTestContext();
    const driver = await flyFactory.create(config, ctx);
    try {
      const volume = await driver.createVolume({ name: "pgdata", kind: "volume" });
      const svc = await driver.startService!({
        id: "pg",
        name: "pg",
        image: TEST_IMAGE,
        command: ["sleep", "60"],
        env: {},
        mounts: [{ volume, path: "/data" }],
        ports: [],
      }, () => {});
      await assert.rejects(
        () =>
          driver.startTask({
            id: "uses-pgdata",
            name: "uses-pgdata",
            image: TEST_IMAGE,
            command: ["true"],
            env: {},
            mounts: [{ volume, path: "/data" }],
          }, () => {}),
        (error: unknown) =>
          error instanceof DriverError && error.code === "invalid" &&
          /volume "pgdata" is attached to service pg's machine/.test(error.message),
      );
      await svc.stop(0);
      const task = await driver.startTask({
        id: "after-pg",
        name: "after-pg",
        image: TEST_IMAGE,
        command: ["true"],
        env: {},
        mounts: [{ volume, path: "/data" }],
      }, () => {});
      assert.equal((await task.wait()).code, 0, "the volume is free once the service stopped");
      await task.remove();
    } finally {
      assert.deepEqual((await driver.close()).failed, []);
      await ctx.dispose();
    }
  });

  Deno.test("fly services: close() while the probe helper is still starting (a probe given up) destroys it", async () => {
    const ctx = await createTestContext();
    const driver = await flyFactory.create(config, ctx);
    const svc = await driver.startService!({
      id: "gives-up",
      name: "gives-up",
      image: TEST_IMAGE,
      command: ["sleep", "60"],
      env: {},
      mounts: [],
      ports: [],
    }, () => {});
    const abort = new AbortController();
    const probe = svc.dial(8080, abort.signal);
    abort.abort();
    await probe.then(() => assert.fail("the aborted probe connected"), () => {});
    const report = await driver.close();
    await ctx.dispose();
    assert.deepEqual(report.failed, []);
    const left = fake.liveMachines().filter((machine) =>
      (machine.config.metadata as Record<string, string> | undefined)?.pocketci_run ===
        ctx.runId
    );
    assert.deepEqual(left.map((machine) => machine.name), [], "the run left machines behind");
    assert.ok(
      report.removed.some((record) => record.id.includes("probe")),
      "the probe helper was not part of the close report",
    );
  });

  Deno.test("fly services: the fake is left with no machine, container or network", async () => {
    const machines = fake.liveMachines().map((m) => `${m.app}/${m.name}`);
    await fake.close();
    assert.deepEqual(machines, []);
    assert.deepEqual(await fakeLeftovers(fake), []);
  });
}
