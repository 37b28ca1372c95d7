/**
 * The pipeline conformance suite against the docker driver on the local engine.
 *
 * @module
 */

import { DOCKER_CAPABILITIES } from "../../drivers/docker/capabilities.ts";
import { enginePrivileged, ignoreDocker, TEST_IMAGE } from "../docker/engine_fixture.ts";
import { definePipelineConformance } from "./pipeline_suite.ts";

const privileged = ignoreDocker ? false : await enginePrivileged();

definePipelineConformance({
  driver: "docker",
  image: TEST_IMAGE,
  // See docker_test.ts: an engine that cannot run privileged containers refuses them clearly.
  capabilities: { ...DOCKER_CAPABILITIES, privileged },
  ignore: ignoreDocker,
});
