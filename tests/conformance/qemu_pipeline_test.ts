/**
 * The pipeline conformance suite on the qemu driver (the minimal test guest of
 * `.ci/setup_qemu.sh`, direct kernel boot, `accel=tcg`).
 *
 * @module
 */

import { QEMU_CAPABILITIES } from "../../drivers/qemu/capabilities.ts";
import { guestDsn, ignoreQemu } from "../qemu/guest_fixture.ts";
import { definePipelineConformance } from "./pipeline_suite.ts";

definePipelineConformance({
  driver: guestDsn(),
  // Ignored by the driver (commands run in the VM's own system), which warns once.
  image: "busybox",
  capabilities: QEMU_CAPABILITIES,
  absoluteMounts: true,
  ignore: ignoreQemu,
});
