/**
 * The fly driver's registry entry: capabilities, the permissions it needs (net to the Machines
 * API host only, env for the token and `FLY_API_URL`), and lazy creation.
 *
 * DSN: `fly`, `fly:app=my-ci,region=ord,org=my-org,size=shared-cpu-2x` (token from
 * `FLY_API_TOKEN` or `token=`).
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
import { flyCapabilities } from "./driver.ts";
import { FLY_API_URL, FLY_LOGS_URL } from "./api.ts";

/** The `net` value for the API base URL (`host:port`). */
export function apiHost(url: string): string {
  const parsed = new URL(url);
  const port = parsed.port || (parsed.protocol === "https:" ? "443" : "80");
  return `${parsed.hostname}:${port}`;
}

/** The permissions for a configuration, given the API URLs in effect. */
export function flyPermissions(apiUrl: string, logsUrl: string = FLY_LOGS_URL): PermissionNeed[] {
  return [
    {
      permission: "net",
      values: [...new Set([apiHost(apiUrl), apiHost(logsUrl)])],
      reason:
        "the Fly Machines API (apps, machines, volumes, exec) and Fly's logs API (services' output); nothing else is contacted",
    },
    {
      permission: "env",
      values: [
        "FLY_API_URL",
        "FLY_LOGS_URL",
        "FLY_API_TOKEN",
        "FLY_APP",
        "FLY_REGION",
        "FLY_ORG",
        "POCKETCI_FLY_WAIT_SECONDS",
        "POCKETCI_FLY_BACKOFF_MS",
      ],
      reason: "the API URL overrides and the DSN's environment defaults",
    },
  ];
}

function ephemeral(config: Readonly<Record<string, unknown>>): boolean {
  return typeof config.app !== "string" || config.app === "";
}

/** The fly driver's factory. */
export const flyFactory: DriverFactory = {
  name: "fly",
  capabilities: (config) => flyCapabilities(ephemeral(config)),
  permissions: (): PermissionNeed[] =>
    flyPermissions(
      Deno.env.get("FLY_API_URL") || FLY_API_URL,
      Deno.env.get("FLY_LOGS_URL") || FLY_LOGS_URL,
    ),
  async create(config: Readonly<Record<string, unknown>>, context: DriverContext): Promise<Driver> {
    const { createFlyDriver } = await import("./create.ts");
    return await createFlyDriver(config, context);
  },
  async maintenance(
    config: Readonly<Record<string, unknown>>,
    context: DriverContext,
  ): Promise<DriverMaintenance> {
    const [{ flyConfig, flyApi, ephemeralAppName }, { FlyMaintenance }] = await Promise.all([
      import("./create.ts"),
      import("./maintenance.ts"),
    ]);
    const parsed = flyConfig(config);
    const app = parsed.app ?? ephemeralAppName(context.namespace);
    return new FlyMaintenance(
      flyApi(parsed.token),
      app,
      parsed.app === undefined,
      context.namespace,
      context.stateDir,
    );
  },
};
