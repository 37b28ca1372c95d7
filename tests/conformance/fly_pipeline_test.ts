/**
 * The pipeline conformance suites (tasks and services) on the fly driver against the fake
 * Machines API (tests/fakes/fly) in an existing app (so caches are claimed and checked).
 *
 * @module
 */

import assert from "node:assert/strict";
import { flyCapabilities } from "../../drivers/fly/driver.ts";
import {
  FAKE_TOKEN,
  fakeLeftovers,
  ignoreFly,
  startFake,
  TEST_IMAGE,
} from "../fly/fake_fixture.ts";
import { definePipelineConformance } from "./pipeline_suite.ts";
import { definePipelineServiceConformance } from "./pipeline_services_suite.ts";
import { runIdOf } from "../helpers/pipeline_harness.ts";
import { NETWORK_SERVICE_HELPERS } from "./docker_service_helpers.ts";

const app = "pocketci-pipelines";
const fake = ignoreFly ? undefined : startFake();
fake?.addApp(app);

definePipelineConformance({
  driver: `fly:token=${FAKE_TOKEN},app=${app},region=ord`,
  image: TEST_IMAGE,
  capabilities: flyCapabilities(false),
  absoluteMounts: true,
  ignore: ignoreFly,
});

definePipelineServiceConformance({
  driver: `fly:token=${FAKE_TOKEN},app=${app},region=ord`,
  ignore: ignoreFly,
  port: () => Promise.resolve(8080),
  helpers: NETWORK_SERVICE_HELPERS,
  remains: (result) => {
    const runId = runIdOf(result);
    return Promise.resolve(
      fake!.liveMachines()
        .filter((machine) =>
          (machine.config.metadata as Record<string, string> | undefined)?.pocketci_run ===
            runId
        )
        .map((machine) => machine.name),
    );
  },
});

Deno.test({
  name: "pipeline conformance [fly]: no machine, volume or container is left on the fake",
  ignore: ignoreFly,
  fn: async () => {
    const machines = fake!.liveMachines().map((m) => m.name);
    const volumes = fake!.allVolumes().map((v) => v.name);
    await fake!.close();
    assert.deepEqual({ machines, volumes }, { machines: [], volumes: [] });
    assert.deepEqual(await fakeLeftovers(fake!), []);
  },
});
