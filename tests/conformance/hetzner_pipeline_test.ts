/**
 * The pipeline conformance suite on the hetzner driver against the fake hetzner API
 * (tests/fakes/cloud), whose machines are real sshd on loopback forwarding the local engine.
 * `reuse_worker=true` (caches live on the parked machine); the last test deletes what is parked.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DOCKER_CAPABILITIES } from "../../drivers/docker/capabilities.ts";
import { FakeHetzner } from "../fakes/cloud/hetzner.ts";
import { ignore } from "../machines/harness.ts";
import { definePipelineConformance } from "./pipeline_suite.ts";
import { definePipelineServiceConformance } from "./pipeline_services_suite.ts";
import { NETWORK_SERVICE_HELPERS, runContainers } from "./docker_service_helpers.ts";

const fake = ignore ? undefined : new FakeHetzner();
if (fake) Deno.env.set("HETZNER_API_URL", fake.url);

const DRIVER = `hetzner:token=${fake?.token ?? "none"},reuse_worker=true,max_workers=4`;

definePipelineConformance({
  driver: DRIVER,
  image: "busybox:latest",
  capabilities: { ...DOCKER_CAPABILITIES, privileged: false },
  ignore,
});

// Services are containers on the machine's engine, on the run's network beside the tasks.
definePipelineServiceConformance({
  driver: DRIVER,
  ignore,
  port: () => Promise.resolve(8080),
  helpers: NETWORK_SERVICE_HELPERS,
  remains: runContainers,
});

Deno.test({
  name: "hetzner pipelines: the fake is closed with nothing busy left",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await fake!.close();
    assert.equal(fake!.liveMachineProcesses, 0);
  },
});
