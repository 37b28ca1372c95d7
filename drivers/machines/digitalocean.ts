/**
 * The DigitalOcean API v2 as a {@link MachineProvider}: droplets carry the pool state in tags
 * (`ci`, `namespace-<ns>`, `ci-worker-<ns>`, `ci-busy-<ns>` or `ci-idle-<ns>`, plus `ci-run-<run>`,
 * `ci-key-<fingerprint>`, `ci-idle-since-<seconds>-<droplet id>` while parked and `ci-claim-<run>`
 * while busy); every list follows `links.pages.next`, so nothing past the first page is missed.
 *
 * A parked droplet is claimed by deleting its idle-since tag, which is unique to the droplet and
 * the park: the API deletes a tag once, so exactly one run gets a 204 and the others a 404, with no
 * claim-and-re-read round trip. Tags the driver makes for one run or one park are created before
 * they are assigned and deleted (not only unassigned) when done, so the account does not collect
 * them. A reused droplet costs 11 requests a run (the list, the claim, 2 for the run's tag, 2 for
 * busy, 2 for the idle-since tag, 2 for idle, 1 to delete the run's tag): the API changes one tag
 * on one resource per request.
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

/** The public DigitalOcean API (without `/v2`). */
export const DIGITALOCEAN_API = "https://api.digitalocean.com";

/** Settings of the DigitalOcean provider. */
export interface DigitalOceanSettings {
  /** The namespace. */
  readonly namespace: string;
  /** Region slug. */
  readonly region: string;
  /** Custom tags. */
  readonly tags: readonly string[];
}

interface Droplet {
  id: number;
  name: string;
  status: string;
  size_slug?: string;
  tags?: string[];
  volume_ids?: string[];
  networks?: { v4?: { ip_address: string; type: string }[] };
}

interface Volume {
  id: string;
  name: string;
  droplet_ids?: number[];
  tags?: string[];
}

interface Page {
  links?: { pages?: { next?: string } };
}

/** A custom tag as DigitalOcean accepts it (`[a-zA-Z0-9_:-]`). */
export function sanitizeTag(tag: string): string {
  return tag.trim().replace(/[^a-zA-Z0-9_:-]/g, "-").slice(0, 255);
}

/** The claim tag's run part, as the tag allows it. */
function claimName(runId: string): string {
  return runId.toLowerCase().replace(/[^a-z0-9._-]/g, "-");
}

function statusOf(status: string): MachineStatus {
  if (status === "active") return "running";
  if (status === "off" || status === "archive") return "off";
  if (status === "new") return "creating";
  return "error";
}

/** The DigitalOcean provider. */
export class DigitalOceanProvider implements MachineProvider {
  readonly driver = "digitalocean" as const;
  readonly sizeParam = "size";
  readonly api: ApiClient;
  readonly #ns: string;
  readonly #settings: DigitalOceanSettings;

  /** Creates the provider for a namespace. */
  constructor(api: ApiClient, settings: DigitalOceanSettings) {
    this.api = api;
    this.#settings = settings;
    this.#ns = safeNamespace(settings.namespace);
  }

  get #worker(): string {
    return `ci-worker-${this.#ns}`;
  }
  get #busy(): string {
    return `ci-busy-${this.#ns}`;
  }
  get #idle(): string {
    return `ci-idle-${this.#ns}`;
  }

  async #all<T>(path: string, key: string, query: Record<string, string> = {}): Promise<T[]> {
    const out: T[] = [];
    for (let page = 1;; page++) {
      const body = await this.api.request<Page & Record<string, unknown>>("GET", path, {
        query: { ...query, per_page: 200, page },
      });
      out.push(...((body?.[key] ?? []) as T[]));
      if (!body?.links?.pages?.next) return out;
    }
  }

  #machine(d: Droplet): PoolMachine {
    const tags = new Set(d.tags ?? []);
    const find = (prefix: string) =>
      [...tags].find((t) => t.startsWith(prefix))?.slice(prefix.length);
    // `ci-idle-since-<seconds>` (earlier versions, other tools) or `-<seconds>-<droplet id>`.
    const stamps = [...tags].flatMap((tag) => {
      const match = /^ci-idle-since-(\d+)(?:-(\d+))?$/.exec(tag);
      return match ? [{ tag, seconds: Number(match[1]), own: match[2] === String(d.id) }] : [];
    }).sort((a, b) => b.seconds - a.seconds);
    const since = stamps.length > 0 ? String(stamps[0].seconds) : undefined;
    const marker = stamps.find((stamp) => stamp.own)?.tag;
    return {
      id: String(d.id),
      name: d.name,
      status: statusOf(d.status),
      ip: d.networks?.v4?.find((n) => n.type === "public")?.ip_address,
      busy: tags.has(this.#busy),
      idle: tags.has(this.#idle),
      runId: find("ci-claim-") ?? find("ci-run-"),
      claims: [...tags].filter((t) => t.startsWith("ci-claim-")).map((t) =>
        t.slice("ci-claim-".length)
      ),
      keyTag: find("ci-key-"),
      idleSince: since === undefined ? undefined : Number(since) * 1000,
      ...(marker && tags.has(this.#idle) ? { idleMarker: marker } : {}),
      volumeIds: d.volume_ids ?? [],
      size: d.size_slug,
    };
  }

  async findKey(name: string): Promise<ProviderKey | undefined> {
    const keys = await this.#all<{ id: number; name: string }>("/v2/account/keys", "ssh_keys");
    const key = keys.find((k) => k.name === name);
    return key && { id: String(key.id), name: key.name };
  }

  async createKey(name: string, publicKey: string): Promise<ProviderKey> {
    const body = await this.api.request<{ ssh_key: { id: number } }>("POST", "/v2/account/keys", {
      body: { name, public_key: publicKey },
    });
    return { id: String(body.ssh_key.id), name };
  }

  async deleteKey(id: string): Promise<void> {
    await this.api.request("DELETE", `/v2/account/keys/${id}`).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
  }

  #volume(v: Volume): ProviderVolume {
    const run = (v.tags ?? []).find((t) => t.startsWith("ci-run-"));
    return {
      id: v.id,
      name: v.name,
      runId: run?.slice("ci-run-".length),
      attachedTo: (v.droplet_ids ?? []).map(String),
    };
  }

  async createVolume(name: string, sizeGb: number, runId: string): Promise<ProviderVolume> {
    const body = await this.api.request<{ volume: Volume }>("POST", "/v2/volumes", {
      body: {
        name,
        size_gigabytes: sizeGb,
        region: this.#settings.region,
        filesystem_type: "ext4",
        description: `PocketCI Docker data for namespace ${this.#settings.namespace}`,
        tags: ["ci", `namespace-${this.#ns}`, `ci-run-${runId}`],
      },
    });
    return this.#volume(body.volume);
  }

  async findVolume(name: string): Promise<ProviderVolume | undefined> {
    const list = await this.#all<Volume>("/v2/volumes", "volumes", { name });
    const found = list.find((v) => v.name === name);
    return found && this.#volume(found);
  }

  async listVolumes(): Promise<ProviderVolume[]> {
    const list = await this.#all<Volume>("/v2/volumes", "volumes");
    return list.filter((v) => (v.tags ?? []).includes(`namespace-${this.#ns}`)).map((v) =>
      this.#volume(v)
    );
  }

  async deleteVolume(id: string): Promise<void> {
    // A droplet's delete detaches its volumes asynchronously: a 409 (still attached) is retried.
    for (let attempt = 1;; attempt++) {
      try {
        await this.api.request("DELETE", `/v2/volumes/${id}`);
        return;
      } catch (error) {
        if (isNotFound(error)) return;
        if (!(error instanceof ApiError) || error.status !== 409 || attempt >= 10) throw error;
        await sleep(Math.min(500 * attempt, 3_000), undefined);
      }
    }
  }

  volumeDevice(volume: ProviderVolume): string {
    return `/dev/disk/by-id/scsi-0DO_Volume_${volume.name}`;
  }

  async createMachine(request: CreateMachine): Promise<PoolMachine> {
    const tags = [
      "ci",
      `namespace-${this.#ns}`,
      this.#worker,
      this.#busy,
      `ci-run-${request.runId}`,
      `ci-key-${request.keyTag}`,
      ...this.#settings.tags.map(sanitizeTag).filter((t) => t !== ""),
    ];
    const body = await this.api.request<{ droplet: Droplet }>("POST", "/v2/droplets", {
      body: {
        name: request.name,
        region: request.region,
        size: request.size,
        image: request.image,
        ssh_keys: [Number(request.keyId)],
        user_data: request.userData,
        tags: [...new Set(tags)],
        volumes: request.volumeId ? [request.volumeId] : [],
        backups: false,
        ipv6: false,
        monitoring: false,
        with_droplet_agent: false,
      },
    });
    return this.#machine(body.droplet);
  }

  async findMachine(name: string): Promise<PoolMachine | undefined> {
    const list = await this.#all<Droplet>("/v2/droplets", "droplets", { name });
    const found = list.find((d) => d.name === name);
    return found && this.#machine(found);
  }

  async getMachine(id: string): Promise<PoolMachine | undefined> {
    try {
      const body = await this.api.request<{ droplet: Droplet }>("GET", `/v2/droplets/${id}`);
      return this.#machine(body.droplet);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async listPool(): Promise<PoolMachine[]> {
    const list = await this.#all<Droplet>("/v2/droplets", "droplets", { tag_name: this.#worker });
    return list.map((d) => this.#machine(d));
  }

  /** Creates a tag (creating one that exists is harmless). */
  async #createTag(tag: string): Promise<void> {
    await this.api.request("POST", "/v2/tags", { body: { name: tag }, idempotent: true });
  }

  /** Deletes a tag, which unassigns it from every resource (already gone: false). */
  async #deleteTag(tag: string): Promise<boolean> {
    try {
      await this.api.request("DELETE", `/v2/tags/${encodeURIComponent(tag)}`);
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /**
   * Assigns or unassigns a tag. A tag known to be new (`fresh`) is created first; another is
   * assigned first and created only on a 404 (the shared pool tags exist after the first run).
   */
  async #tag(tag: string, id: string, assign: boolean, fresh = false): Promise<void> {
    const resources = { resources: [{ resource_id: id, resource_type: "droplet" }] };
    const path = `/v2/tags/${encodeURIComponent(tag)}/resources`;
    if (fresh) await this.#createTag(tag);
    if (!assign) {
      await this.api.request("DELETE", path, { body: resources }).catch((e) => {
        if (!isNotFound(e)) throw e;
      });
      return;
    }
    try {
      await this.api.request("POST", path, { body: resources, idempotent: true });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      // Assigning needs the tag to exist: create it (harmless if a concurrent run did) and retry.
      await this.#createTag(tag);
      await this.api.request("POST", path, { body: resources, idempotent: true });
    }
  }

  async claimParked(
    machine: PoolMachine,
    runId: string,
  ): Promise<PoolMachine | undefined | "unsupported"> {
    if (!machine.idleMarker) return "unsupported";
    if (!(await this.#deleteTag(machine.idleMarker))) return undefined;
    const claim = claimName(runId);
    await this.#tag(`ci-claim-${claim}`, machine.id, true, true);
    await this.markBusy(machine, runId);
    return {
      ...machine,
      busy: true,
      idle: false,
      runId: claim,
      claims: [claim],
      idleMarker: undefined,
    };
  }

  async addClaim(machine: PoolMachine, runId: string): Promise<void> {
    await this.#tag(`ci-claim-${claimName(runId)}`, machine.id, true, true);
  }

  async removeClaim(machine: PoolMachine, runId: string): Promise<void> {
    await this.#tag(`ci-claim-${claimName(runId)}`, machine.id, false);
  }

  async markBusy(machine: PoolMachine, _runId: string): Promise<void> {
    // Busy first: a concurrent claimer that re-reads from now on sees it and backs off. The
    // run's claim tag stays while it is busy: it names the run holding the machine.
    await this.#tag(this.#busy, machine.id, true);
    await this.#tag(this.#idle, machine.id, false);
  }

  async markIdle(machine: PoolMachine): Promise<void> {
    const since = `ci-idle-since-${Math.floor(Date.now() / 1000)}-${machine.id}`;
    await this.#tag(since, machine.id, true, true);
    await this.#tag(this.#idle, machine.id, true);
    await this.#tag(this.#busy, machine.id, false);
    // The run's claim tag named it while it was busy; no other droplet carries it now.
    for (const claim of machine.claims) await this.#deleteTag(`ci-claim-${claim}`);
  }

  async deleteMachine(id: string): Promise<void> {
    await this.api.request("DELETE", `/v2/droplets/${id}`).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
  }
}
