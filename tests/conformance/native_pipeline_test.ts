/**
 * The pipeline conformance suite against the native driver.
 *
 * @module
 */

import { nativeFactory } from "../../drivers/native/factory.ts";
import { definePipelineConformance } from "./pipeline_suite.ts";

definePipelineConformance({
  driver: "native",
  image: "busybox",
  // `limits` depends on the host's cgroups; the runner sees what the driver detects.
  capabilities: nativeFactory.capabilities({}),
});
