/**
 * Creating the fly driver for a run: the API client (`FLY_API_URL` or `https://api.machines.dev`),
 * the app (an existing one, kept; or the ephemeral `ci-<namespace>`, created now and deleted with
 * everything in it when the run closes), then the driver.
 *
 * @module
 */

import {
  type CleanupReport,
  type DriverContext,
  DriverError,
  type ResourceRecord,
} from "../contract.ts";
import { ApiClient } from "../machines/api_client.ts";
import { FLY_API_URL, FLY_LOGS_URL, FlyApi } from "./api.ts";
import { FlyDriver } from "./driver.ts";
import { presetGuest } from "./guest.ts";

/** The DSN's settings. */
export interface FlyConfig {
  /** API token. */
  readonly token: string;
  /** Existing app; unset: ephemeral. */
  readonly app?: string;
  /** Region. */
  readonly region?: string;
  /** Organization slug. */
  readonly org: string;
  /** Size preset. */
  readonly size: string;
}

/** Reads the resolved DSN parameters; a missing token is an `invalid` error saying where to set it. */
export function flyConfig(config: Readonly<Record<string, unknown>>): FlyConfig {
  const text = (key: string): string | undefined =>
    typeof config[key] === "string" && config[key] !== "" ? config[key] as string : undefined;
  const token = text("token");
  if (token === undefined) {
    throw new DriverError(
      "invalid",
      "the fly driver needs an API token: set FLY_API_TOKEN or the DSN parameter token=",
    );
  }
  const size = text("size") ?? "shared-cpu-1x";
  presetGuest(size);
  return { token, app: text("app"), region: text("region"), org: text("org") ?? "personal", size };
}

/** The API base URL: `FLY_API_URL`, else Fly's. */
export function flyApiUrl(): string {
  return Deno.env.get("FLY_API_URL") || FLY_API_URL;
}

/** The ephemeral app's name for a namespace (a DNS label). */
export function ephemeralAppName(namespace: string): string {
  const clean = `ci-${namespace}`.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/-+/g, "-");
  return clean.slice(0, 63).replace(/-+$/, "");
}

/** The platform API base URL (app logs): `FLY_LOGS_URL`, else Fly's. */
export function flyLogsUrl(): string {
  return Deno.env.get("FLY_LOGS_URL") || FLY_LOGS_URL;
}

/** A client for the Machines API and the logs API. */
export function flyApi(token: string, signal?: AbortSignal): FlyApi {
  const backoff = Number(Deno.env.get("POCKETCI_FLY_BACKOFF_MS") ?? "") || 1000;
  const client = (baseUrl: string) =>
    new ApiClient({ provider: "Fly", baseUrl, token, backoffMs: backoff, signal });
  return new FlyApi(client(flyApiUrl()), client(flyLogsUrl()));
}

/** Creates the driver, and the ephemeral app when no app is configured. */
export async function createFlyDriver(
  raw: Readonly<Record<string, unknown>>,
  ctx: DriverContext,
): Promise<FlyDriver> {
  const config = flyConfig(raw);
  const api = flyApi(config.token);
  const waitSeconds = Number(Deno.env.get("POCKETCI_FLY_WAIT_SECONDS") ?? "") || 60;
  const settings = {
    region: config.region,
    size: config.size,
    volumeSizeGb: 1,
    waitSeconds,
  };
  if (config.app !== undefined) {
    if (!await api.appExists(config.app)) {
      throw new DriverError(
        "not_found",
        `Fly app "${config.app}" does not exist or the token cannot see it; create it with fly apps create or leave app= unset for an ephemeral app`,
      );
    }
    return new FlyDriver(api, ctx, { ...settings, app: config.app, ephemeral: false });
  }
  const app = ephemeralAppName(ctx.namespace);
  const record: ResourceRecord = {
    kind: "app",
    id: app,
    driver: "fly",
    runId: ctx.runId,
    namespace: ctx.namespace,
    createdAt: new Date().toISOString(),
    detail: { app },
  };
  await ctx.record(record);
  try {
    await api.createApp(app, config.org);
  } catch (error) {
    await ctx.forget(record);
    const message = (error as Error).message;
    if (/taken|exists/i.test(message)) {
      throw new DriverError(
        "unavailable",
        `the ephemeral Fly app "${app}" already exists: another run of namespace ${ctx.namespace} is using it, or a killed run left it (pocketci gc removes it); or set app= to an existing app`,
      );
    }
    throw new DriverError("unavailable", `could not create the Fly app "${app}": ${message}`);
  }
  return new EphemeralAppDriver(api, ctx, { ...settings, app, ephemeral: true }, record);
}

/** The driver over its own app: close also deletes the app. */
class EphemeralAppDriver extends FlyDriver {
  readonly #api: FlyApi;
  readonly #ctx: DriverContext;
  readonly #record: ResourceRecord;
  #deleted = false;

  constructor(
    api: FlyApi,
    ctx: DriverContext,
    settings: ConstructorParameters<typeof FlyDriver>[2],
    record: ResourceRecord,
  ) {
    super(api, ctx, settings);
    this.#api = api;
    this.#ctx = ctx;
    this.#record = record;
  }

  override async close(): Promise<CleanupReport> {
    const report = await super.close();
    if (this.#deleted) return report;
    try {
      await this.#api.deleteApp(this.#record.id);
      await this.#ctx.forget(this.#record);
      this.#deleted = true;
      return { removed: [...report.removed, this.#record], failed: report.failed };
    } catch (error) {
      return {
        removed: report.removed,
        failed: [...report.failed, { resource: this.#record, reason: (error as Error).message }],
      };
    }
  }
}
