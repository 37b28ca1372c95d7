/**
 * The vz driver's factory, ready for `drivers/registry.ts` once vz has been run on a Mac
 * (until then the registry keeps vz marked not implemented, and on other hosts a run fails
 * with the one-line "needs macOS" error).
 *
 * @module
 */

import type { Driver, DriverContext, DriverFactory, PermissionNeed } from "../contract.ts";
import { AGENT_CAPABILITIES } from "../agent_driver/driver.ts";
import { vzConfig } from "./config.ts";

/** The vz driver's factory. */
export const vzFactory: DriverFactory = {
  name: "vz",
  capabilities: () => AGENT_CAPABILITIES,
  permissions: (config) => vzPermissions(config),
  async create(config, context: DriverContext): Promise<Driver> {
    const { createVzDriver } = await import("./driver.ts");
    return createVzDriver(vzConfig(config, Deno.env.get("HOME")), context);
  },
};

/** What vz needs: vfkit, qemu-img, an ISO tool and npm (once) run; the cache read and written. */
export function vzPermissions(config: Readonly<Record<string, unknown>>): PermissionNeed[] {
  const settings = vzConfig(config, Deno.env.get("HOME"));
  return [
    {
      permission: "run",
      values: ["vfkit", "qemu-img", "genisoimage", "mkisofs", "xorriso", "npm", "cp"],
      reason:
        "runs the VM (vfkit), converts the image to raw, writes the seed, fetches the guest's Deno once",
    },
    {
      permission: "read",
      values: settings.image ? [settings.cacheDir, settings.image] : [settings.cacheDir],
      reason: "reads the cached base image and the guest's Deno",
    },
    {
      permission: "write",
      values: [settings.cacheDir],
      reason: "caches the converted raw image and the guest's Deno",
    },
    ...(settings.image ? [] : [{
      permission: "net" as const,
      values: ["cloud-images.ubuntu.com"],
      reason: "downloads the Ubuntu cloud image",
    }]),
  ];
}
