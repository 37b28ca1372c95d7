/**
 * Registry entries for drivers this version does not implement yet: `create` fails
 * with a clear `unavailable` error, while capabilities and permissions still say what
 * the driver will need, so `pocketci permissions` and `pocketci drivers` work for them.
 *
 * @module
 */

import {
  type DriverCapabilities,
  DriverError,
  type DriverFactory,
  type PermissionNeed,
} from "./contract.ts";
import type { DriverName } from "../dsn/types.ts";
import { DOCKER_CAPABILITIES } from "./docker/capabilities.ts";
import { defaultStateDir } from "../runner/state.ts";
import { notImplementedMessage } from "./registry.ts";
import { vzPermissions } from "./vz/factory.ts";

/** The drivers that have no implementation in this version. */
export type UnavailableDriverName = Exclude<DriverName, "native" | "docker">;

/** Container-running backends (k8s, cloud machines with Docker, Fly) can honour what docker does. */
const CONTAINERS: DriverCapabilities = DOCKER_CAPABILITIES;

const VMS: DriverCapabilities = Object.freeze({
  liveStreaming: false,
  separateStderr: true,
  stdin: true,
  sandboxes: true,
  user: false,
  privileged: false,
  limits: false,
  caches: true,
  images: false,
});

const CAPABILITIES: Record<UnavailableDriverName, DriverCapabilities> = {
  k8s: CONTAINERS,
  digitalocean: CONTAINERS,
  hetzner: CONTAINERS,
  fly: Object.freeze({ ...CONTAINERS, liveStreaming: false, privileged: false, sandboxes: false }),
  qemu: VMS,
  vz: VMS,
};

/** The factory of a driver that is not implemented in this version. */
export function unavailableFactory(name: UnavailableDriverName): DriverFactory {
  return {
    name,
    capabilities: () => CAPABILITIES[name],
    permissions: (config) => plannedPermissions(name, config),
    create: () =>
      Promise.reject(
        new DriverError("unavailable", notImplementedMessage(name)),
      ),
  };
}

/** What each unimplemented driver will need, from its resolved configuration. */
export function plannedPermissions(
  name: UnavailableDriverName,
  config: Readonly<Record<string, unknown>>,
): PermissionNeed[] {
  const text = (key: string): string | undefined =>
    typeof config[key] === "string" && config[key] !== "" ? config[key] as string : undefined;
  const home = readEnv("HOME");
  const expand = (path: string): string =>
    home !== undefined && (path === "~" || path.startsWith("~/")) ? home + path.slice(1) : path;
  const stateDir = (): string => {
    try {
      return defaultStateDir({
        POCKETCI_STATE_DIR: readEnv("POCKETCI_STATE_DIR"),
        XDG_STATE_HOME: readEnv("XDG_STATE_HOME"),
        HOME: home,
      });
    } catch {
      return "/var/lib/pocketci";
    }
  };
  switch (name) {
    case "k8s":
      return [
        {
          permission: "read",
          values: [expand(text("kubeconfig") ?? "~/.kube/config")],
          reason: "reads the kubeconfig for the API server address and credentials",
        },
        {
          permission: "net",
          values: true,
          reason:
            "talks to the Kubernetes API server named in the kubeconfig (known only after reading it)",
        },
        { permission: "env", values: ["KUBECONFIG", "HOME"], reason: "locates the kubeconfig" },
      ];
    case "digitalocean":
    case "hetzner": {
      const api = name === "digitalocean" ? "api.digitalocean.com" : "api.hetzner.cloud";
      return [
        {
          permission: "net",
          values: true,
          reason:
            `calls ${api}, then SSH and Docker on machines whose addresses exist only once they are created`,
        },
        {
          permission: "read",
          values: [stateDir()],
          reason: "keeps the namespace's SSH key in the state directory",
        },
        {
          permission: "write",
          values: [stateDir()],
          reason: "writes the namespace's SSH key to the state directory",
        },
      ];
    }
    case "fly":
      return [{
        permission: "net",
        values: ["api.machines.dev", "api.fly.io"],
        reason: "calls the Fly Machines API and the Fly API (apps, volumes)",
      }];
    case "qemu": {
      const cache = expand(text("cache_dir") ?? "~/.cache/ci/qemu");
      const image = text("image");
      return [
        {
          permission: "run",
          values: [text("qemu_binary") ?? "qemu-system-x86_64", "qemu-img", "genisoimage"],
          reason: "boots the VM, makes its copy-on-write disk and its cloud-init seed ISO",
        },
        {
          permission: "read",
          values: image ? [cache, image] : [cache],
          reason: "reads the cached base image and the VM's files",
        },
        { permission: "write", values: [cache], reason: "caches the downloaded base image" },
        {
          permission: "net",
          values: image ? ["127.0.0.1"] : ["127.0.0.1", "cloud-images.ubuntu.com"],
          reason: image
            ? "talks to QMP and the guest agent on loopback"
            : "talks to QMP and the guest agent on loopback and downloads the Ubuntu cloud image",
        },
      ];
    }
    case "vz":
      // vfkit runs the VM (drivers/vz/README.md): no FFI.
      return vzPermissions(config);
  }
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}
