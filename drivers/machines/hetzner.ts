/**
 * The Hetzner Cloud API v1 as a {@link MachineProvider}: servers carry the pool state in labels
 * (`ci=true`, `namespace=<ns>`, `ci-worker=<ns>`, `ci-worker-status=busy|idle`, `ci-run`,
 * `ci-key`, `ci-idle-since`, and a transient `ci-claim`); the pool is listed with the label
 * selector `ci-worker=<ns>` and every list follows `meta.pagination.next_page`. Server types,
 * images and locations are passed by name (the API accepts names), so no lookup pins an
 * architecture. A label update replaces the whole map, so it always sends every label.
 *
 * A label update is not a compare-and-set, so a parked server is claimed with a lock instead: a
 * placement group named `pocketci-claim-<server id>-<idle-since>` (names are unique in a project,
 * so one run's create succeeds and the others get a `uniqueness_error`), then a re-read that the
 * server is still parked with that stamp, then the busy labels; the lock is deleted at once. A lock
 * older than a minute was left by a run that died mid-claim and is taken over; a deleted server's
 * locks go with it.
 *
 * @module
 */

import { type ApiClient, ApiError, isNotFound } from "./api_client.ts";
import type {
  CreateMachine,
  MachineProvider,
  MachineStatus,
  PoolMachine,
  ProviderKey,
  ProviderVolume,
} from "./provider.ts";
import { safeNamespace } from "./provider.ts";
import { sleep } from "../timers.ts";

/** The public Hetzner Cloud API. */
export const HETZNER_API = "https://api.hetzner.cloud/v1";

/** Settings of the Hetzner provider. */
export interface HetznerSettings {
  /** The namespace. */
  readonly namespace: string;
  /** Location name. */
  readonly location: string;
  /** Custom labels. */
  readonly labels: Readonly<Record<string, string>>;
}

interface Server {
  id: number;
  name: string;
  status: string;
  labels?: Record<string, string>;
  volumes?: number[];
  server_type?: { name: string };
  public_net?: { ipv4?: { ip: string } | null };
}

interface Volume {
  id: number;
  name: string;
  server: number | null;
  labels?: Record<string, string>;
}

interface Paged {
  meta?: { pagination?: { next_page?: number | null } };
}

function statusOf(status: string): MachineStatus {
  if (status === "running") return "running";
  if (status === "initializing" || status === "starting") return "creating";
  if (status === "off" || status === "stopping" || status === "deleting") return "off";
  return "error";
}

/** A label value as Hetzner accepts it: `[a-zA-Z0-9._-]`, alphanumeric at both ends, at most 63. */
export function sanitizeLabel(value: string): string {
  return value.replace(/[^a-zA-Z0-9._-]/g, "-").slice(0, 63).replace(
    /^[^a-zA-Z0-9]+|[^a-zA-Z0-9]+$/g,
    "",
  );
}

/** A claim lock this old was left by a run that died mid-claim (a claim takes well under it). */
const STALE_LOCK_MS = 60_000;

/** The Hetzner provider. */
export class HetznerProvider implements MachineProvider {
  readonly driver = "hetzner" as const;
  readonly sizeParam = "server_type";
  readonly api: ApiClient;
  readonly #ns: string;
  readonly #settings: HetznerSettings;

  /** Creates the provider for a namespace. */
  constructor(api: ApiClient, settings: HetznerSettings) {
    this.api = api;
    this.#settings = settings;
    this.#ns = safeNamespace(settings.namespace);
  }

  async #all<T>(path: string, key: string, query: Record<string, string> = {}): Promise<T[]> {
    const out: T[] = [];
    for (let page = 1;;) {
      const body = await this.api.request<Paged & Record<string, unknown>>("GET", path, {
        query: { ...query, per_page: 50, page },
      });
      out.push(...((body?.[key] ?? []) as T[]));
      const next = body?.meta?.pagination?.next_page;
      if (!next) return out;
      page = next;
    }
  }

  #machine(s: Server): PoolMachine {
    const labels = s.labels ?? {};
    const status = labels["ci-worker-status"];
    const since = labels["ci-idle-since"];
    return {
      id: String(s.id),
      name: s.name,
      status: statusOf(s.status),
      ip: s.public_net?.ipv4?.ip,
      busy: status === "busy",
      idle: status === "idle",
      runId: labels["ci-run"],
      claims: labels["ci-claim"] ? [labels["ci-claim"]] : [],
      keyTag: labels["ci-key"],
      idleSince: since === undefined ? undefined : Number(since) * 1000,
      volumeIds: (s.volumes ?? []).map(String),
      size: s.server_type?.name,
      labels,
    };
  }

  async findKey(name: string): Promise<ProviderKey | undefined> {
    const keys = await this.#all<{ id: number; name: string }>("/ssh_keys", "ssh_keys", { name });
    const key = keys.find((k) => k.name === name);
    return key && { id: String(key.id), name: key.name };
  }

  async createKey(name: string, publicKey: string): Promise<ProviderKey> {
    const body = await this.api.request<{ ssh_key: { id: number } }>("POST", "/ssh_keys", {
      body: { name, public_key: publicKey, labels: { ci: "true", namespace: this.#ns } },
    });
    return { id: String(body.ssh_key.id), name };
  }

  async deleteKey(id: string): Promise<void> {
    await this.api.request("DELETE", `/ssh_keys/${id}`).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
  }

  #volume(v: Volume): ProviderVolume {
    return {
      id: String(v.id),
      name: v.name,
      runId: v.labels?.["ci-run"],
      attachedTo: v.server === null ? [] : [String(v.server)],
    };
  }

  async createVolume(name: string, sizeGb: number, runId: string): Promise<ProviderVolume> {
    const body = await this.api.request<{ volume: Volume }>("POST", "/volumes", {
      body: {
        name,
        size: sizeGb,
        location: this.#settings.location,
        format: "ext4",
        automount: false,
        labels: { ci: "true", namespace: this.#ns, "ci-run": sanitizeLabel(runId) },
      },
    });
    return this.#volume(body.volume);
  }

  async findVolume(name: string): Promise<ProviderVolume | undefined> {
    const list = await this.#all<Volume>("/volumes", "volumes", { name });
    const found = list.find((v) => v.name === name);
    return found && this.#volume(found);
  }

  async listVolumes(): Promise<ProviderVolume[]> {
    const list = await this.#all<Volume>("/volumes", "volumes", {
      label_selector: `ci=true,namespace=${this.#ns}`,
    });
    return list.map((v) => this.#volume(v));
  }

  async deleteVolume(id: string): Promise<void> {
    // A server's delete detaches its volumes while it runs: "locked" or "attached" is retried.
    for (let attempt = 1;; attempt++) {
      try {
        await this.api.request("DELETE", `/volumes/${id}`);
        return;
      } catch (error) {
        if (isNotFound(error)) return;
        if (!(error instanceof ApiError) || ![409, 423].includes(error.status) || attempt >= 10) {
          throw error;
        }
        await sleep(Math.min(500 * attempt, 3_000), undefined);
      }
    }
  }

  volumeDevice(volume: ProviderVolume): string {
    return `/dev/disk/by-id/scsi-0HC_Volume_${volume.id}`;
  }

  async createMachine(request: CreateMachine): Promise<PoolMachine> {
    const labels: Record<string, string> = {
      ...Object.fromEntries(
        Object.entries(this.#settings.labels).map(([k, v]) => [k, sanitizeLabel(v)]),
      ),
      ci: "true",
      namespace: this.#ns,
      "ci-worker": this.#ns,
      "ci-worker-status": "busy",
      "ci-run": sanitizeLabel(request.runId),
      "ci-key": request.keyTag,
    };
    const body = await this.api.request<{ server: Server }>("POST", "/servers", {
      body: {
        name: request.name,
        server_type: request.size,
        image: request.image,
        location: request.region,
        ssh_keys: [Number(request.keyId)],
        user_data: request.userData,
        labels,
        volumes: request.volumeId ? [Number(request.volumeId)] : [],
        automount: false,
        start_after_create: true,
      },
    });
    return this.#machine(body.server);
  }

  async findMachine(name: string): Promise<PoolMachine | undefined> {
    const list = await this.#all<Server>("/servers", "servers", { name });
    const found = list.find((s) => s.name === name);
    return found && this.#machine(found);
  }

  async getMachine(id: string): Promise<PoolMachine | undefined> {
    try {
      const body = await this.api.request<{ server: Server }>("GET", `/servers/${id}`);
      return this.#machine(body.server);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async listPool(): Promise<PoolMachine[]> {
    const list = await this.#all<Server>("/servers", "servers", {
      label_selector: `ci-worker=${this.#ns}`,
    });
    return list.map((s) => this.#machine(s));
  }

  async #setLabels(
    id: string,
    change: (labels: Record<string, string>) => void,
    known?: Readonly<Record<string, string>>,
  ): Promise<void> {
    // Read the current map right before writing it (unless the caller just read it): the update
    // replaces every label.
    const current = known ? { labels: known } : await this.getMachine(id);
    if (!current) throw new ApiError(`Hetzner API: server ${id} not found`, 404, "not_found");
    const labels = { ...current.labels };
    change(labels);
    await this.api.request("PUT", `/servers/${id}`, { body: { labels } });
  }

  async #deleteLock(id: number): Promise<void> {
    await this.api.request("DELETE", `/placement_groups/${id}`).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
  }

  async claimParked(
    machine: PoolMachine,
    runId: string,
  ): Promise<PoolMachine | undefined | "unsupported"> {
    const since = machine.labels?.["ci-idle-since"];
    if (!machine.idle || since === undefined) return "unsupported";
    const name = `pocketci-claim-${machine.id}-${since}`;
    let lock: number;
    try {
      const body = await this.api.request<{ placement_group: { id: number } }>(
        "POST",
        "/placement_groups",
        {
          body: {
            name,
            type: "spread",
            labels: {
              ci: "true",
              "ci-lock": this.#ns,
              "ci-lock-server": machine.id,
              "ci-run": sanitizeLabel(runId),
            },
          },
        },
      );
      lock = body.placement_group.id;
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 409)) throw error;
      const [held] = await this.#all<{ id: number; created: string }>(
        "/placement_groups",
        "placement_groups",
        { name },
      );
      if (held && Date.now() - Date.parse(held.created) > STALE_LOCK_MS) {
        await this.#deleteLock(held.id);
      }
      return undefined;
    }
    try {
      const current = await this.getMachine(machine.id);
      if (!current?.idle || current.labels?.["ci-idle-since"] !== since) return undefined;
      await this.markBusy(current, runId);
      return { ...current, busy: true, idle: false, runId: sanitizeLabel(runId), claims: [] };
    } finally {
      await this.#deleteLock(lock);
    }
  }

  async addClaim(machine: PoolMachine, runId: string): Promise<void> {
    await this.#setLabels(machine.id, (l) => {
      if (l["ci-worker-status"] !== "idle" || l["ci-claim"]) {
        throw new ApiError(
          `Hetzner API: server ${machine.name} is no longer idle`,
          409,
          "conflict",
        );
      }
      l["ci-claim"] = sanitizeLabel(runId);
    });
  }

  async removeClaim(machine: PoolMachine, runId: string): Promise<void> {
    await this.#setLabels(machine.id, (l) => {
      if (l["ci-claim"] === sanitizeLabel(runId)) delete l["ci-claim"];
    });
  }

  async markBusy(machine: PoolMachine, runId: string): Promise<void> {
    // `machine` was re-read right after the claim: its labels are current.
    await this.#setLabels(machine.id, (l) => {
      l["ci-worker-status"] = "busy";
      l["ci-run"] = sanitizeLabel(runId);
      delete l["ci-claim"];
      delete l["ci-idle-since"];
    }, machine.labels);
  }

  async markIdle(machine: PoolMachine): Promise<void> {
    await this.#setLabels(machine.id, (l) => {
      l["ci-worker-status"] = "idle";
      l["ci-idle-since"] = String(Math.floor(Date.now() / 1000));
    });
  }

  async deleteMachine(id: string): Promise<void> {
    await this.api.request("DELETE", `/servers/${id}`).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
    const locks = await this.#all<{ id: number }>("/placement_groups", "placement_groups", {
      label_selector: `ci-lock-server=${id}`,
    });
    for (const lock of locks) await this.#deleteLock(lock.id);
  }
}
