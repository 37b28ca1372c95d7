/**
 * What the DigitalOcean and Hetzner registry entries share: turning the validated DSN
 * configuration into a provider, pool settings and a driver; `gc` maintenance; and the
 * permissions (the API host, and SSH to machines whose addresses exist only once created).
 *
 * @module
 */

import type {
  Driver,
  DriverContext,
  DriverFactory,
  DriverMaintenance,
  PermissionNeed,
} from "../contract.ts";
import { DOCKER_CAPABILITIES } from "../docker/capabilities.ts";
import { parseDuration } from "../../dsn/duration.ts";
import { defaultStateDir } from "../../runner/state.ts";
import { ApiClient } from "./api_client.ts";
import { DIGITALOCEAN_API, DigitalOceanProvider } from "./digitalocean.ts";
import { forwardingDriver, MachineDriver } from "./driver.ts";
import { HETZNER_API, HetznerProvider } from "./hetzner.ts";
import { machineMaintenance } from "./maintenance.ts";
import { MachinePool, type PoolSettings } from "./pool.ts";
import type { MachineProvider } from "./provider.ts";
import { digitalOceanSize, hetznerServerType } from "./sizing.ts";

/** The two machine drivers. */
export type MachineDriverName = "digitalocean" | "hetzner";

/** The environment variable that overrides each provider's API base URL. */
export const API_URL_ENV: Readonly<Record<MachineDriverName, string>> = {
  digitalocean: "DIGITALOCEAN_API_URL",
  hetzner: "HETZNER_API_URL",
};

const DEFAULT_API: Readonly<Record<MachineDriverName, string>> = {
  digitalocean: DIGITALOCEAN_API,
  hetzner: HETZNER_API,
};

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** The API base URL: the override variable, else the public API. */
export function apiBaseUrl(name: MachineDriverName): string {
  return readEnv(API_URL_ENV[name]) ?? DEFAULT_API[name];
}

function str(config: Readonly<Record<string, unknown>>, key: string, fallback = ""): string {
  return typeof config[key] === "string" ? config[key] as string : fallback;
}

function num(config: Readonly<Record<string, unknown>>, key: string, fallback: number): number {
  return typeof config[key] === "number" ? config[key] as number : fallback;
}

function ms(config: Readonly<Record<string, unknown>>, key: string, fallback: string): number {
  return parseDuration(str(config, key, fallback));
}

/** Pool settings from a validated configuration. */
export function poolSettings(
  name: MachineDriverName,
  config: Readonly<Record<string, unknown>>,
): PoolSettings {
  const digitalocean = name === "digitalocean";
  return {
    image: str(config, "image", digitalocean ? "docker-20-04" : "docker-ce"),
    size: str(config, digitalocean ? "size" : "server_type", digitalocean ? "s-1vcpu-1gb" : "cx23"),
    autoSize: digitalocean ? digitalOceanSize : hetznerServerType,
    region: str(config, digitalocean ? "region" : "location", digitalocean ? "nyc3" : "nbg1"),
    diskSizeGb: num(config, "disk_size", digitalocean ? 25 : 10),
    maxWorkers: num(config, "max_workers", 1),
    reuseWorker: config.reuse_worker === true,
    pollIntervalMs: ms(config, "poll_interval", "10s"),
    waitTimeoutMs: ms(config, "wait_timeout", "10m"),
    sshTimeoutMs: ms(config, "ssh_timeout", "5m"),
    dockerTimeoutMs: ms(config, "docker_timeout", "5m"),
    idleTimeoutMs: ms(config, "idle_timeout", "30m"),
    sshPort: 22,
    // Hetzner's label update replaces the whole map: give a concurrent claimer's write time to
    // land before re-reading. DigitalOcean's tags are added one by one, so a re-read suffices.
    claimSettleMs: digitalocean ? 0 : 1_000,
  };
}

/** A provider bound to the configuration and namespace. */
export function createProvider(
  name: MachineDriverName,
  config: Readonly<Record<string, unknown>>,
  namespace: string,
  onWait?: (line: string) => void,
): MachineProvider {
  const api = new ApiClient({
    provider: name === "digitalocean" ? "DigitalOcean" : "Hetzner",
    baseUrl: apiBaseUrl(name),
    token: str(config, "token").trim(),
    onWait,
  });
  if (name === "digitalocean") {
    const tags = Array.isArray(config.tags) ? config.tags.map(String) : [];
    return new DigitalOceanProvider(api, {
      namespace,
      region: str(config, "region", "nyc3"),
      tags,
    });
  }
  const labels = typeof config.labels === "object" && config.labels !== null
    ? config.labels as Record<string, string>
    : {};
  return new HetznerProvider(api, { namespace, location: str(config, "location", "nbg1"), labels });
}

/** Creates the driver for a run. */
export function createMachineDriver(
  name: MachineDriverName,
  config: Readonly<Record<string, unknown>>,
  context: DriverContext,
  progress?: (line: string) => void,
): Driver {
  const report = progress ?? ((line: string) => context.info?.(line));
  const provider = createProvider(name, config, context.namespace, report);
  const pool = new MachinePool(provider, poolSettings(name, config), context, { progress: report });
  return forwardingDriver(new MachineDriver(name, pool, provider.sizeParam));
}

function stateDir(): string {
  try {
    return defaultStateDir({
      POCKETCI_STATE_DIR: readEnv("POCKETCI_STATE_DIR"),
      XDG_STATE_HOME: readEnv("XDG_STATE_HOME"),
      HOME: readEnv("HOME"),
    });
  } catch {
    return "/var/lib/pocketci";
  }
}

/** The permissions of a machine driver. */
export function machinePermissions(name: MachineDriverName): PermissionNeed[] {
  const api = new URL(apiBaseUrl(name)).host;
  return [
    {
      permission: "net",
      values: true,
      reason:
        `calls ${api}, then SSH (port 22) on the pool's machines; their addresses exist only ` +
        "once the provider assigns them and Deno cannot grant one port on any host, so net is not narrowed",
    },
    {
      permission: "env",
      values: true,
      reason: `reads ${
        API_URL_ENV[name]
      }; dockerode's \`debug\` dependency enumerates every environment variable when it loads`,
    },
    {
      permission: "read",
      values: [stateDir()],
      reason: "reads the namespace's SSH key and the machines' host keys in the state directory",
    },
    {
      permission: "write",
      values: [stateDir()],
      reason: "writes the namespace's SSH key (mode 0600) and each machine's host key",
    },
  ];
}

/** The registry entry of a machine driver. */
export function machineFactory(name: MachineDriverName): DriverFactory {
  return {
    name,
    capabilities: () => DOCKER_CAPABILITIES,
    permissions: () => machinePermissions(name),
    create: (config, context): Promise<Driver> =>
      Promise.resolve(createMachineDriver(name, config, context)),
    maintenance: (config, context): Promise<DriverMaintenance> =>
      Promise.resolve(
        machineMaintenance(createProvider(name, config, context.namespace), {
          stateDir: context.stateDir,
          namespace: context.namespace,
          idleTimeoutMs: ms(config, "idle_timeout", "30m"),
        }),
      ),
  };
}
