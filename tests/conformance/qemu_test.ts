/**
 * The driver conformance suite on the qemu driver, booting the minimal test guest of
 * `.ci/setup_qemu.sh` (direct kernel boot, `accel=tcg`) once per test.
 *
 * @module
 */

import { qemuFactory } from "../../drivers/qemu/factory.ts";
import { createQemuDriver } from "../../drivers/qemu/driver.ts";
import { qemuConfig } from "../../drivers/qemu/config.ts";
import { assertGuest, guestConfig, ignoreQemu } from "../qemu/guest_fixture.ts";
import { defineDriverConformance } from "./driver_suite.ts";

Deno.test({
  name: "qemu: QEMU and the test guest are installed",
  ignore: ignoreQemu,
  fn: assertGuest,
});

if (!ignoreQemu) {
  defineDriverConformance({
    name: "qemu",
    createDriver: (ctx) => createQemuDriver(qemuConfig(guestConfig()), ctx, { progress: () => {} }),
    maintenance: (ctx) => qemuFactory.maintenance!(guestConfig(), ctx),
    absoluteMounts: true,
    tasksArePid1: false,
  });
}
