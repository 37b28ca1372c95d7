/**
 * The vz driver: the agent driver (`drivers/agent_driver/`) on a VM booted through Apple's
 * Virtualization.framework by `vfkit`. Everything but the hypervisor call is shared with the
 * tests, which run it with QEMU (`tests/vz/`). Not registered yet (`drivers/registry.ts`
 * keeps vz marked not implemented): nothing here could run it on a Mac.
 *
 * @module
 */

import type { Driver, DriverContext } from "../contract.ts";
import { createAgentDriver } from "../agent_driver/driver.ts";
import { ensureImage, ubuntuImage } from "../qemu/image.ts";
import type { VzConfig } from "./config.ts";
import { requireMacos } from "./host.ts";
import { type GuestArch, guestDeno } from "./guest_deno.ts";
import { bootVzMachine } from "./machine.ts";
import { vfkitHypervisor } from "./vfkit.ts";

/** Creates a vz driver for one run; the VM boots at the first operation that needs it. */
export function createVzDriver(config: VzConfig, context: DriverContext): Driver {
  requireMacos();
  const arch: GuestArch = Deno.build.arch === "aarch64" ? "aarch64" : "x86_64";
  const progress = (line: string) => context.warn(line);
  return createAgentDriver({
    name: "vz",
    context,
    boot: async (signal) =>
      await bootVzMachine(config, context, {
        hypervisor: vfkitHypervisor(),
        baseImage: config.image ??
          await ensureImage(config.cacheDir, ubuntuImage(arch), {
            progress,
            ...(signal === undefined ? {} : { signal }),
          }),
        denoBinary: await guestDeno(config.cacheDir, arch, Deno.version.deno, progress),
        progress,
      }),
  });
}
