/**
 * The driver conformance suite on the fly driver against the fake Machines API
 * (tests/fakes/fly), whose machines are containers on the local Docker engine. The app is an
 * existing one (so caches are claimed and checked); tests/fly/driver_test.ts covers the
 * ephemeral app.
 *
 * @module
 */

import { flyFactory } from "../../drivers/fly/factory.ts";
import assert from "node:assert/strict";
import {
  FAKE_TOKEN,
  fakeLeftovers,
  ignoreFly,
  startFake,
  TEST_IMAGE,
} from "../fly/fake_fixture.ts";
import { assertEngine } from "../docker/engine_fixture.ts";
import { defineDriverConformance } from "./driver_suite.ts";

Deno.test({
  name: "fly: the local engine answers (the fake's machines)",
  ignore: ignoreFly,
  fn: assertEngine,
});

if (!ignoreFly) {
  const fake = startFake();
  const app = "pocketci-conformance";
  fake.addApp(app);
  const config = { token: FAKE_TOKEN, app, region: "ord", size: "shared-cpu-1x" };
  defineDriverConformance({
    name: "fly",
    createDriver: (ctx) => flyFactory.create(config, ctx),
    maintenance: (ctx) => flyFactory.maintenance!(config, ctx),
    image: TEST_IMAGE,
    absoluteMounts: true,
    tasksArePid1: false,
    wholeCpus: true,
  });
  Deno.test("fly: the conformance suite left no machine or volume on the fake", async () => {
    const machines = fake.liveMachines().map((m) => `${m.app}/${m.name}`);
    const volumes = fake.allVolumes().map((v) => v.name);
    await fake.close();
    assert.deepEqual({ machines, volumes }, { machines: [], volumes: [] });
    assert.deepEqual(
      await fakeLeftovers(fake),
      [],
      "containers or Docker volumes of the fake remain",
    );
  });
}
