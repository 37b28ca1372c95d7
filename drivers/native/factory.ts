/**
 * The native driver's registry entry: capabilities and permissions are known without
 * loading the implementation, which is imported only when a run creates the driver.
 *
 * @module
 */

import type {
  DriverCapabilities,
  DriverContext,
  DriverFactory,
  DriverMaintenance,
  PermissionNeed,
} from "../contract.ts";
import { defaultStateDir } from "../../runner/state.ts";
import { detectCgroupsSync } from "./cgroup_detect.ts";

/**
 * What the native driver honours on a host without usable cgroups (kept in sync with
 * the implementation by a test); where cgroups allow it, `limits` is true as well
 * (see {@link nativeCapabilities}).
 */
export const NATIVE_CAPABILITIES: DriverCapabilities = Object.freeze({
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

/** The native driver's capabilities, given whether this host lets it apply limits. */
export function nativeCapabilities(limits: boolean): DriverCapabilities {
  return limits ? LIMITED_CAPABILITIES : NATIVE_CAPABILITIES;
}

const LIMITED_CAPABILITIES: DriverCapabilities = Object.freeze({
  ...NATIVE_CAPABILITIES,
  limits: true,
});

/** The native driver's factory. */
export const nativeFactory: DriverFactory = {
  name: "native",
  capabilities: () => nativeCapabilities(detectCgroupsSync().available),
  permissions: (config) => nativePermissions(config),
  async create(_config, context: DriverContext) {
    const { createNativeDriver } = await import("./driver.ts");
    return await createNativeDriver(context);
  },
  async maintenance(_config, context: DriverContext): Promise<DriverMaintenance> {
    const { createNativeMaintenance } = await import("./maintenance.ts");
    return await createNativeMaintenance(context);
  },
};

/**
 * The Deno permissions the native driver needs. `config.stateDir` (a string) names the
 * state directory when the runner uses a non-default one.
 */
export function nativePermissions(config: Readonly<Record<string, unknown>>): PermissionNeed[] {
  const stateDir = typeof config.stateDir === "string"
    ? config.stateDir
    : defaultStateDir(readEnv());
  return [
    {
      permission: "run",
      values: true,
      reason:
        "tasks are host programs named by the pipeline, so the set cannot be listed in advance (Deno treats any --allow-run as full access, since a child process is outside Deno's sandbox); mount symlinks are made with ln -s, as Deno.symlink would need unscoped read and write, and an absolute working directory outside the state directory (such as /tmp) is checked with /bin/sh test -d instead of asking for unscoped read; CPU and memory limits are applied by /bin/sh scripts that create, write and remove cgroups under /sys/fs/cgroup (Deno opens /proc and /sys files only with --allow-all, so no --allow-read or --allow-write could scope that access)",
    },
    {
      permission: "read",
      values: [stateDir],
      reason:
        "volumes live in the run's workspace and caches in the namespace's state, both under the state directory",
    },
    {
      permission: "write",
      values: [stateDir],
      reason: "creates and removes task directories, volumes and caches under the state directory",
    },
    {
      permission: "read",
      values: [...commandDirs(), "/usr/bin/setsid", "/bin/setsid"],
      reason:
        "finds task commands on PATH and starts them through setsid in their own process group (Deno's own lookup and detached spawn are over a millisecond slower per task)",
    },
    {
      permission: "env",
      values: ["PATH", "HOME"],
      reason:
        "every task gets the host's PATH and HOME (and nothing else from the host environment)",
    },
    {
      permission: "net",
      values: ["127.0.0.1"],
      reason: "readiness checks (tcp, http) of services, which listen on the host's 127.0.0.1",
    },
  ];
}

/** The absolute directories of the host's PATH, where task commands are looked up. */
function commandDirs(): string[] {
  const path = readEnv().PATH ?? "/usr/local/bin:/usr/bin:/bin";
  return [...new Set(path.split(":").filter((dir) => dir.startsWith("/") && !dir.includes(",")))];
}

function readEnv(): Record<string, string | undefined> {
  const get = (name: string): string | undefined => {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  };
  return {
    POCKETCI_STATE_DIR: get("POCKETCI_STATE_DIR"),
    XDG_STATE_HOME: get("XDG_STATE_HOME"),
    HOME: get("HOME"),
    PATH: get("PATH"),
  };
}
