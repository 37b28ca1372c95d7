/**
 * The qemu driver's registry entry. Light on purpose: the driver loads when a run creates it.
 *
 * DSN: `qemu`, `qemu:accel=tcg,memory=4096`, `qemu:image=/path/base.qcow2`,
 * `qemu:kernel=/boot/vmlinuz,initrd=/boot/initrd.img,append=console=ttyS0`.
 *
 * @module
 */

import type { Driver, DriverContext, DriverFactory, DriverMaintenance } from "../contract.ts";
import { QEMU_CAPABILITIES } from "./capabilities.ts";
import { qemuConfig } from "./config.ts";
import { qemuPermissions } from "./permissions.ts";

/** The qemu driver's factory. */
export const qemuFactory: DriverFactory = {
  name: "qemu",
  capabilities: () => QEMU_CAPABILITIES,
  permissions: (config) => qemuPermissions(qemuConfig(config), config),
  async create(config, context: DriverContext): Promise<Driver> {
    const { createQemuDriver } = await import("./driver.ts");
    return await createQemuDriver(qemuConfig(config), context);
  },
  async maintenance(_config, context: DriverContext): Promise<DriverMaintenance> {
    const { createQemuMaintenance } = await import("./maintenance.ts");
    return await createQemuMaintenance(context);
  },
};
