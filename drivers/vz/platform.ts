/**
 * The vz driver's platform rule, without imports so the CLI can apply it at start-up: Apple's
 * Virtualization.framework exists only on macOS.
 *
 * @module
 */

/** The one-line error for vz on a host that is not macOS, or undefined on macOS. */
export function vzPlatformMessage(os: string = Deno.build.os): string | undefined {
  if (os === "darwin") return undefined;
  return `the vz driver needs macOS (Apple Virtualization.framework) and this host runs ${os}; use --driver=qemu or --driver=docker here`;
}
