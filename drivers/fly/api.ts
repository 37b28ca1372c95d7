/**
 * The Fly Machines REST API calls the driver makes (`/v1/apps`, machines, volumes, exec), on the
 * shared JSON client (Bearer auth, Fly's `{"error": ...}` bodies in one-line errors, retries on
 * 429 and on 5xx for requests that are safe to repeat).
 *
 * @module
 */

import { ApiClient, ApiError, isNotFound } from "../machines/api_client.ts";

/** The default API base URL (`FLY_API_URL` overrides it). */
export const FLY_API_URL = "https://api.machines.dev";

/** The default base URL of Fly's platform API, which serves app logs (`FLY_LOGS_URL` overrides it). */
export const FLY_LOGS_URL = "https://api.fly.io";

/** A machine as the API returns it (the fields the driver reads). */
export interface FlyMachine {
  /** Machine ID. */
  readonly id: string;
  /** Name. */
  readonly name: string;
  /** `created`, `started`, `stopping`, `stopped`, `destroyed` ... */
  readonly state: string;
  /** Region. */
  readonly region?: string;
  /** Its address on the organization's private network (6PN, IPv6). */
  readonly private_ip?: string;
  /** Its config (metadata included). */
  readonly config?: { readonly metadata?: Readonly<Record<string, string>> };
  /** Events, newest first. */
  readonly events?: readonly FlyEvent[];
  /** Creation time. */
  readonly created_at?: string;
}

/** A machine event. */
export interface FlyEvent {
  /** `launch`, `start`, `exit`, `destroy` ... */
  readonly type: string;
  /** The exit details for `exit`. */
  readonly request?: {
    readonly exit_event?: {
      readonly exit_code?: number;
      readonly oom_killed?: boolean;
      readonly signal?: number;
    };
  };
}

/** A volume. */
export interface FlyVolume {
  /** `vol_...`. */
  readonly id: string;
  /** Name. */
  readonly name: string;
  /** Region. */
  readonly region: string;
  /** The machine it is attached to. */
  readonly attached_machine_id?: string | null;
  /** Creation time. */
  readonly created_at?: string;
}

/** One line of an app's logs. */
export interface FlyLogLine {
  /** The text, without a line end. */
  readonly message: string;
  /** `info`, `warning`, `error` ... */
  readonly level: string;
  /** The machine that printed it. */
  readonly instance: string;
  /** Who made it: `app` for the machine's own output. */
  readonly provider: string;
}

/** What `exec` returns. */
export interface FlyExecResult {
  /** Exit code. */
  readonly exit_code: number;
  /** Standard output (text). */
  readonly stdout?: string;
  /** Standard error (text). */
  readonly stderr?: string;
}

const enc = encodeURIComponent;

/** The calls. */
export class FlyApi {
  /** The JSON client. */
  readonly client: ApiClient;
  /** The client of the platform API (app logs); absent: logs are not read. */
  readonly logsClient: ApiClient | undefined;

  /** Wraps a client of the Machines API and, for app logs, one of the platform API. */
  constructor(client: ApiClient, logsClient?: ApiClient) {
    this.client = client;
    this.logsClient = logsClient;
  }

  /**
   * One page of a machine's log lines after `nextToken` ("" for the start), and the token for
   * the next page (unchanged when the page is empty).
   */
  async logs(
    app: string,
    instance: string,
    nextToken: string,
  ): Promise<{ lines: FlyLogLine[]; nextToken: string }> {
    if (this.logsClient === undefined) throw new Error("no client for Fly's logs API");
    const reply = await this.logsClient.request<{
      data?: { attributes?: Record<string, unknown> }[];
      meta?: { next_token?: unknown };
    }>("GET", `/api/v1/apps/${enc(app)}/logs`, {
      query: { instance, ...(nextToken === "" ? {} : { next_token: nextToken }) },
    });
    const lines = (reply?.data ?? []).map((entry) => {
      const a = entry.attributes ?? {};
      const meta = a.meta as { event?: { provider?: unknown } } | undefined;
      return {
        message: typeof a.message === "string" ? a.message : "",
        level: typeof a.level === "string" ? a.level : "info",
        instance: typeof a.instance === "string" ? a.instance : "",
        provider: typeof meta?.event?.provider === "string" ? meta.event.provider : "",
      };
    });
    const next = reply?.meta?.next_token;
    return { lines, nextToken: typeof next === "string" && next !== "" ? next : nextToken };
  }

  /** Creates an app in an organization. */
  async createApp(name: string, org: string): Promise<void> {
    await this.client.request("POST", "/v1/apps", { body: { app_name: name, org_slug: org } });
  }

  /** Whether the app exists. */
  async appExists(name: string): Promise<boolean> {
    try {
      await this.client.request("GET", `/v1/apps/${enc(name)}`);
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /** Deletes an app and everything in it (gone already is fine). */
  async deleteApp(name: string): Promise<void> {
    try {
      await this.client.request("DELETE", `/v1/apps/${enc(name)}`);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** Creates (and starts) a machine. */
  async createMachine(app: string, body: Record<string, unknown>): Promise<FlyMachine> {
    return await this.client.request<FlyMachine>("POST", `/v1/apps/${enc(app)}/machines`, {
      body,
    });
  }

  /** One machine. */
  async getMachine(app: string, id: string): Promise<FlyMachine> {
    return await this.client.request<FlyMachine>(
      "GET",
      `/v1/apps/${enc(app)}/machines/${enc(id)}`,
    );
  }

  /** The app's machines, optionally only those whose metadata has these values. */
  async listMachines(
    app: string,
    metadata: Readonly<Record<string, string>> = {},
  ): Promise<FlyMachine[]> {
    const query = Object.fromEntries(
      Object.entries(metadata).map(([k, v]) => [`metadata.${k}`, v]),
    );
    return await this.client.request<FlyMachine[]>("GET", `/v1/apps/${enc(app)}/machines`, {
      query,
    });
  }

  /**
   * Waits at most `timeoutSeconds` (Fly caps it at 60) for the machine to reach `state`: true
   * once it did, false when the wait expired (a 408) with the machine not there yet.
   */
  async waitState(
    app: string,
    id: string,
    state: "started" | "stopped" | "destroyed",
    timeoutSeconds: number,
  ): Promise<boolean> {
    try {
      await this.client.request("GET", `/v1/apps/${enc(app)}/machines/${enc(id)}/wait`, {
        query: { state, timeout: timeoutSeconds },
      });
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.status === 408) return false;
      throw error;
    }
  }

  /** Asks the machine to stop: `signal` now, SIGKILL after `timeoutSeconds`. */
  async stop(app: string, id: string, signal: string, timeoutSeconds: number): Promise<void> {
    await this.client.request("POST", `/v1/apps/${enc(app)}/machines/${enc(id)}/stop`, {
      body: { signal, timeout: `${timeoutSeconds}s` },
      idempotent: true,
    });
  }

  /** Destroys a machine, running or not (gone already is fine). */
  async destroy(app: string, id: string): Promise<void> {
    try {
      await this.client.request("DELETE", `/v1/apps/${enc(app)}/machines/${enc(id)}`, {
        query: { force: "true" },
      });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** Runs a command in a started machine and returns its output. */
  async exec(
    app: string,
    id: string,
    command: readonly string[],
    idempotent: boolean,
    timeoutSeconds = 60,
  ): Promise<FlyExecResult> {
    return await this.client.request<FlyExecResult>(
      "POST",
      `/v1/apps/${enc(app)}/machines/${enc(id)}/exec`,
      { body: { command, timeout: timeoutSeconds }, idempotent },
    );
  }

  /** Creates a volume. */
  async createVolume(
    app: string,
    name: string,
    region: string,
    sizeGb: number,
  ): Promise<FlyVolume> {
    return await this.client.request<FlyVolume>("POST", `/v1/apps/${enc(app)}/volumes`, {
      body: { name, region, size_gb: sizeGb },
    });
  }

  /** The app's volumes. */
  async listVolumes(app: string): Promise<FlyVolume[]> {
    return await this.client.request<FlyVolume[]>("GET", `/v1/apps/${enc(app)}/volumes`);
  }

  /** Deletes a volume (gone already is fine). */
  async deleteVolume(app: string, id: string): Promise<void> {
    try {
      await this.client.request("DELETE", `/v1/apps/${enc(app)}/volumes/${enc(id)}`);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
}
