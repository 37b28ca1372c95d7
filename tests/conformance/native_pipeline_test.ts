/**
 * The pipeline conformance suite against the native driver.
 *
 * @module
 */

import { NATIVE_CAPABILITIES } from "../../drivers/native/factory.ts";
import { definePipelineConformance } from "./pipeline_suite.ts";

definePipelineConformance({
  driver: "native",
  image: "busybox",
  capabilities: NATIVE_CAPABILITIES,
});
