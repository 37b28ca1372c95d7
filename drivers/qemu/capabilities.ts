/**
 * What the qemu driver honours (kept light: the registry reads it without loading the driver).
 *
 * @module
 */

import type { DriverCapabilities } from "../contract.ts";

/** The qemu driver's capabilities: commands run as root in the VM's own system. */
export const QEMU_CAPABILITIES: DriverCapabilities = Object.freeze({
  liveStreaming: true,
  separateStderr: true,
  stdin: true,
  sandboxes: true,
  user: false,
  privileged: false,
  limits: false,
  caches: true,
  images: false,
});
