/**
 * The pipeline-level service checks against the docker driver on the local engine: services
 * are containers on the run's network, reached by tasks at `name:port`.
 *
 * @module
 */

import { assertEngine, ignoreDocker } from "../docker/engine_fixture.ts";
import { definePipelineServiceConformance } from "./pipeline_services_suite.ts";
import { NETWORK_SERVICE_HELPERS, runContainers } from "./docker_service_helpers.ts";

Deno.test({
  name: "pipeline services [docker]: the local engine answers",
  ignore: ignoreDocker,
  fn: assertEngine,
});

definePipelineServiceConformance({
  driver: "docker",
  ignore: ignoreDocker,
  port: () => Promise.resolve(8080),
  helpers: NETWORK_SERVICE_HELPERS,
  remains: runContainers,
});
