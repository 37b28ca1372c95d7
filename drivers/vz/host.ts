/**
 * Whether this host can run vz, with the one-line errors the spec gives: Apple's
 * Virtualization.framework exists only on macOS, and a process needs the
 * `com.apple.security.virtualization` entitlement to create VMs.
 *
 * @module
 */

import { DriverError } from "../contract.ts";
import { vzPlatformMessage } from "./platform.ts";

/** The spec's message for a process without the entitlement. */
export const ENTITLEMENT_MESSAGE =
  "The process doesn't have the 'com.apple.security.virtualization' entitlement.";

/** The error on a host that is not macOS. */
export function notMacosError(os: string = Deno.build.os): DriverError {
  return new DriverError("unavailable", vzPlatformMessage(os === "darwin" ? "macOS" : os)!);
}

/** Throws {@link notMacosError} unless the host is macOS. */
export function requireMacos(os: string = Deno.build.os): void {
  if (os !== "darwin") throw notMacosError(os);
}

/**
 * The error for a VM monitor's failure output: the spec's entitlement message (with how to
 * fix it) when the output says the entitlement is missing, else the last line.
 */
export function monitorError(monitor: string, output: string): DriverError {
  if (/com\.apple\.security\.virtualization/.test(output)) {
    return new DriverError(
      "unavailable",
      `${ENTITLEMENT_MESSAGE} Sign ${monitor} with entitlements.plist: codesign -s - -f --entitlements entitlements.plist ${monitor}`,
    );
  }
  const line = output.trim().split("\n").filter((l) => l.trim() !== "").at(-1) ?? "no output";
  return new DriverError("failed", `${monitor} could not start the VM: ${line}`);
}
