/**
 * The driver registry: every driver name maps to its factory, loaded on first use
 * with a dynamic import so start-up only pays for the driver a run uses.
 *
 * @module
 */

import type { DriverFactory } from "./contract.ts";
import type { DriverName } from "../dsn/types.ts";
import { vzPlatformMessage } from "./vz/platform.ts";

type Loader = () => Promise<DriverFactory>;

const unavailable = (name: Exclude<DriverName, "native" | "docker">): Loader => async () =>
  (await import("./unavailable.ts")).unavailableFactory(name);

const LOADERS: Readonly<Record<DriverName, Loader>> = {
  native: async () => (await import("./native/factory.ts")).nativeFactory,
  docker: async () => (await import("./docker/factory.ts")).dockerFactory,
  k8s: async () => (await import("./k8s/factory.ts")).k8sFactory,
  digitalocean: async () => (await import("./digitalocean/factory.ts")).digitaloceanFactory,
  hetzner: async () => (await import("./hetzner/factory.ts")).hetznerFactory,
  fly: async () => (await import("./fly/factory.ts")).flyFactory,
  qemu: async () => (await import("./qemu/factory.ts")).qemuFactory,
  vz: unavailable("vz"),
};

/** The drivers with an implementation in this version (the others fail with `unavailable`). */
export const IMPLEMENTED_DRIVERS: readonly DriverName[] = [
  "native",
  "docker",
  "qemu",
  "k8s",
  "fly",
  "digitalocean",
  "hetzner",
];

/** Whether `name` has an implementation in this version. */
export function isImplemented(name: DriverName): boolean {
  return IMPLEMENTED_DRIVERS.includes(name);
}

/**
 * The one-line error for a run on a driver that is not implemented yet (vz on a host that is
 * not macOS: that it needs macOS, which is true whether or not it is implemented).
 */
export function notImplementedMessage(name: DriverName): string {
  const platform = name === "vz" ? vzPlatformMessage() : undefined;
  if (platform !== undefined) return platform;
  return `the ${name} driver is not implemented yet in this version of PocketCI; ` +
    `use --driver=${IMPLEMENTED_DRIVERS.join(" or --driver=")}`;
}

/** The factory for `name`, loading its module on first use. */
export async function getDriverFactory(name: DriverName): Promise<DriverFactory> {
  const load = LOADERS[name];
  if (load === undefined) throw new Error(`unknown driver "${name}"`);
  return await load();
}
