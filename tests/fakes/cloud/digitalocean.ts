/**
 * A fake DigitalOcean API v2, written from the public API reference: Bearer auth, droplets
 * (create with user_data, tags, volumes; get; list by `tag_name` and `name`; delete), droplet
 * actions, tags (create, assign and unassign resources), account SSH keys, block-storage volumes
 * (create, attach, delete), pagination with `links.pages` and `meta.total`, `ratelimit-*` headers,
 * 429 `{"id":"too_many_requests",...}` and 422 `{"id":"unprocessable_entity",...}` bodies. Droplets
 * are real machines (see `machine_host.ts`).
 *
 * @module
 */

import {
  FakeCloud,
  type FakeOptions,
  type MachineSlot,
  md5Fingerprint,
  paginate,
  type Reply,
} from "./fake_server.ts";

/** A droplet as the fake stores it. */
export interface FakeDroplet {
  /** ID. */
  readonly id: number;
  /** Name. */
  readonly name: string;
  /** `new`, `active`, `off`. */
  status: string;
  /** Size slug. */
  readonly size: string;
  /** Region slug. */
  readonly region: string;
  /** Image slug. */
  readonly image: string;
  /** Tags. */
  readonly tags: Set<string>;
  /** The user_data given. */
  readonly userData?: string;
  /** Attached volume IDs. */
  readonly volumeIds: Set<string>;
  /** Its machine. */
  readonly slot: MachineSlot;
  /** Creation time. */
  readonly createdAt: string;
}

/** An account SSH key. */
export interface FakeKey {
  /** ID. */
  readonly id: number;
  /** Name. */
  readonly name: string;
  /** `ssh-ed25519 AAAA...`. */
  readonly publicKey: string;
  /** Fingerprint (the fake's own). */
  readonly fingerprint: string;
}

/** A block-storage volume. */
export interface FakeVolume {
  /** ID (UUID). */
  readonly id: string;
  /** Name. */
  readonly name: string;
  /** Size in GiB. */
  readonly size: number;
  /** Region. */
  readonly region: string;
  /** Tags. */
  readonly tags: string[];
  /** Droplets it is attached to. */
  readonly dropletIds: number[];
}

const SIZES = new Set([
  "s-1vcpu-1gb",
  "s-1vcpu-2gb",
  "s-2vcpu-2gb",
  "s-2vcpu-4gb",
  "s-4vcpu-8gb",
  "s-8vcpu-16gb",
]);
const REGIONS = new Set([
  "nyc1",
  "nyc3",
  "sfo3",
  "ams3",
  "fra1",
  "lon1",
  "sgp1",
  "tor1",
  "blr1",
  "syd1",
]);
const TAG = /^[a-zA-Z0-9_:-]{1,255}$/;
const NAME = /^[a-zA-Z0-9.-]{1,255}$/;

/** The fake DigitalOcean API. */
export class FakeDigitalOcean extends FakeCloud {
  /** Droplets by ID. */
  readonly droplets = new Map<number, FakeDroplet>();
  /** Keys by ID. */
  readonly keys = new Map<number, FakeKey>();
  /** Volumes by ID. */
  readonly volumes = new Map<string, FakeVolume>();
  /** Tags that exist. */
  readonly tags = new Set<string>();
  /** Actions by ID. */
  readonly actions = new Map<number, { id: number; type: string; status: string }>();
  protected prefix = "/v2";

  /** Starts the fake. */
  constructor(options: FakeOptions = {}) {
    super(options);
  }

  /** `http://127.0.0.1:PORT` (the client appends `/v2/...`). */
  get url(): string {
    return this.origin;
  }

  protected errorBody(status: number, code: string, message: string): unknown {
    const id = status === 404
      ? "not_found"
      : status === 422
      ? "unprocessable_entity"
      : status === 429
      ? "too_many_requests"
      : status === 401
      ? "unauthorized"
      : code;
    return { id, message, request_id: crypto.randomUUID() };
  }

  protected rateHeaders(): Record<string, string> {
    return {
      "ratelimit-limit": String(this.rateLimit),
      "ratelimit-remaining": String(Math.max(0, this.remaining)),
      "ratelimit-reset": String(Math.ceil(this.resetAt / 1000)),
    };
  }

  #invalid(message: string): Reply {
    return { status: 422, body: this.errorBody(422, "unprocessable_entity", message) };
  }

  #notFound(): Reply {
    return {
      status: 404,
      body: this.errorBody(404, "not_found", "The resource you were accessing could not be found."),
    };
  }

  #page<T>(key: string, items: readonly T[], path: string, query: URLSearchParams): Reply {
    const { page, lastPage, items: slice, perPage } = paginate(items, query, 20, 200);
    const link = (p: number) => {
      const q = new URLSearchParams(query);
      q.set("page", String(p));
      q.set("per_page", String(perPage));
      return `${this.origin}/v2${path}?${q}`;
    };
    const pages: Record<string, string> = {};
    if (page > 1) Object.assign(pages, { first: link(1), prev: link(page - 1) });
    if (page < lastPage) Object.assign(pages, { next: link(page + 1), last: link(lastPage) });
    return {
      status: 200,
      body: { [key]: slice, links: { pages }, meta: { total: items.length } },
    };
  }

  #dropletJson(d: FakeDroplet): unknown {
    const v4 = d.status === "active"
      ? [{ ip_address: d.slot.ip, netmask: "255.0.0.0", gateway: "127.0.0.1", type: "public" }, {
        ip_address: "10.10.0.5",
        netmask: "255.255.0.0",
        gateway: "10.10.0.1",
        type: "private",
      }]
      : [];
    return {
      id: d.id,
      name: d.name,
      status: d.status,
      size_slug: d.size,
      region: { slug: d.region },
      image: { slug: d.image },
      tags: [...d.tags],
      volume_ids: [...d.volumeIds],
      networks: { v4, v6: [] },
      created_at: d.createdAt,
    };
  }

  #volumeJson(v: FakeVolume): unknown {
    return {
      id: v.id,
      name: v.name,
      size_gigabytes: v.size,
      region: { slug: v.region },
      droplet_ids: [...v.dropletIds],
      tags: v.tags,
    };
  }

  #action(type: string): { id: number; type: string; status: string } {
    const action = { id: this.nextId(), type, status: "completed" };
    this.actions.set(action.id, action);
    return action;
  }

  protected async handle(
    method: string,
    path: string,
    query: URLSearchParams,
    body: unknown,
  ): Promise<Reply> {
    const b = (body ?? {}) as Record<string, unknown>;
    const parts = path.split("/").filter(Boolean);
    const route = `${method} /${
      parts.map((p, i) => i % 2 === 1 && parts[0] !== "tags" ? ":id" : p).join("/")
    }`;
    // Droplets.
    if (method === "POST" && path === "/droplets") return this.#createDroplet(b);
    if (method === "GET" && path === "/droplets") {
      let list = [...this.droplets.values()];
      const tag = query.get("tag_name");
      if (tag) list = list.filter((d) => d.tags.has(tag));
      const name = query.get("name");
      if (name) list = list.filter((d) => d.name === name);
      return this.#page("droplets", list.map((d) => this.#dropletJson(d)), path, query);
    }
    if (route === "GET /droplets/:id") {
      const d = this.droplets.get(Number(parts[1]));
      return d ? { status: 200, body: { droplet: this.#dropletJson(d) } } : this.#notFound();
    }
    if (route === "DELETE /droplets/:id") {
      const d = this.droplets.get(Number(parts[1]));
      if (!d) return this.#notFound();
      await this.#deleteDroplet(d);
      return { status: 204 };
    }
    if (route === "POST /droplets/:id/actions") {
      const d = this.droplets.get(Number(parts[1]));
      if (!d) return this.#notFound();
      const type = String(b.type ?? "");
      if (!["power_off", "power_on", "shutdown", "reboot"].includes(type)) {
        return this.#invalid(`${type} is not a valid action type`);
      }
      if (type === "power_off" || type === "shutdown") d.status = "off";
      if (type === "power_on") d.status = "active";
      return { status: 201, body: { action: this.#action(type) } };
    }
    if (route === "GET /actions/:id") {
      const a = this.actions.get(Number(parts[1]));
      return a ? { status: 200, body: { action: a } } : this.#notFound();
    }
    // Tags.
    if (method === "POST" && path === "/tags") {
      const name = String(b.name ?? "");
      if (!TAG.test(name)) {
        return this.#invalid(
          "Name may only contain letters, numbers, colons, dashes and underscores",
        );
      }
      this.tags.add(name);
      return { status: 201, body: { tag: { name, resources: { count: 0 } } } };
    }
    if (parts[0] === "tags" && parts.length === 3 && parts[2] === "resources") {
      const tag = decodeURIComponent(parts[1]);
      if (!this.tags.has(tag)) return this.#notFound();
      const resources = Array.isArray(b.resources) ? b.resources as Record<string, unknown>[] : [];
      if (resources.length === 0) return this.#invalid("resources must not be empty");
      for (const r of resources) {
        const d = this.droplets.get(Number(r.resource_id));
        if (r.resource_type !== "droplet" || !d) return this.#notFound();
        if (method === "POST") d.tags.add(tag);
        else if (method === "DELETE") d.tags.delete(tag);
      }
      return { status: 204 };
    }
    if (parts[0] === "tags" && parts.length === 2 && method === "DELETE") {
      const tag = decodeURIComponent(parts[1]);
      if (!this.tags.delete(tag)) return this.#notFound();
      for (const d of this.droplets.values()) d.tags.delete(tag);
      return { status: 204 };
    }
    // Keys.
    if (method === "POST" && path === "/account/keys") {
      const name = String(b.name ?? "");
      const publicKey = String(b.public_key ?? "").trim();
      if (name === "") return this.#invalid("Name can't be blank");
      if (!/^ssh-(ed25519|rsa) [A-Za-z0-9+/=]+/.test(publicKey)) {
        return this.#invalid("Key invalid, key should be of the format `type key [comment]`");
      }
      const blob = publicKey.split(" ")[1];
      if ([...this.keys.values()].some((k) => k.publicKey.split(" ")[1] === blob)) {
        return this.#invalid("SSH Key is already in use on your account");
      }
      const key: FakeKey = { id: this.nextId(), name, publicKey, fingerprint: fingerprintOf(blob) };
      this.keys.set(key.id, key);
      return { status: 201, body: { ssh_key: keyJson(key) } };
    }
    if (method === "GET" && path === "/account/keys") {
      return this.#page("ssh_keys", [...this.keys.values()].map(keyJson), path, query);
    }
    if (
      method === "DELETE" && parts[0] === "account" && parts[1] === "keys" && parts.length === 3
    ) {
      const key = [...this.keys.values()].find((k) =>
        String(k.id) === parts[2] || k.fingerprint === decodeURIComponent(parts[2])
      );
      if (!key) return this.#notFound();
      this.keys.delete(key.id);
      return { status: 204 };
    }
    // Volumes.
    if (method === "POST" && path === "/volumes") {
      const name = String(b.name ?? "");
      const size = Number(b.size_gigabytes);
      if (!/^[a-z0-9-]{1,64}$/.test(name)) {
        return this.#invalid("name must be lowercase letters, numbers and dashes, at most 64");
      }
      if (!Number.isInteger(size) || size < 1 || size > 16_384) {
        return this.#invalid("size_gigabytes must be between 1 and 16384");
      }
      if (!REGIONS.has(String(b.region))) return this.#invalid("region is invalid");
      if ([...this.volumes.values()].some((v) => v.name === name && v.region === b.region)) {
        return {
          status: 409,
          body: this.errorBody(409, "conflict", "a volume with that name already exists"),
        };
      }
      const volume: FakeVolume = {
        id: crypto.randomUUID(),
        name,
        size,
        region: String(b.region),
        tags: Array.isArray(b.tags) ? b.tags.map(String) : [],
        dropletIds: [],
      };
      this.volumes.set(volume.id, volume);
      return { status: 201, body: { volume: this.#volumeJson(volume) } };
    }
    if (method === "GET" && path === "/volumes") {
      let list = [...this.volumes.values()];
      const name = query.get("name");
      if (name) list = list.filter((v) => v.name === name);
      return this.#page("volumes", list.map((v) => this.#volumeJson(v)), path, query);
    }
    if (route === "DELETE /volumes/:id") {
      const v = this.volumes.get(parts[1]);
      if (!v) return this.#notFound();
      if (v.dropletIds.length > 0) {
        return {
          status: 409,
          body: this.errorBody(409, "conflict", "Volume is attached to a Droplet; detach it first"),
        };
      }
      this.volumes.delete(v.id);
      return { status: 204 };
    }
    if (route === "POST /volumes/:id/actions") {
      const v = this.volumes.get(parts[1]);
      const d = this.droplets.get(Number(b.droplet_id));
      if (!v || !d) return this.#notFound();
      if (b.type === "attach") {
        if (!v.dropletIds.includes(d.id)) v.dropletIds.push(d.id);
        d.volumeIds.add(v.id);
      } else if (b.type === "detach") {
        v.dropletIds.splice(v.dropletIds.indexOf(d.id), 1);
        d.volumeIds.delete(v.id);
      } else return this.#invalid("type must be attach or detach");
      return { status: 202, body: { action: this.#action(`${b.type}_volume`) } };
    }
    return this.#notFound();
  }

  #createDroplet(b: Record<string, unknown>): Reply {
    const name = String(b.name ?? "");
    if (!NAME.test(name)) {
      return this.#invalid("Name is invalid: only a-z, 0-9, . and - are allowed");
    }
    if (!SIZES.has(String(b.size))) {
      return this.#invalid("You specified an invalid size for Droplet creation.");
    }
    if (!REGIONS.has(String(b.region))) {
      return this.#invalid("You specified an invalid region for Droplet creation.");
    }
    if (typeof b.image !== "string" || b.image === "") {
      return this.#invalid("You specified an invalid image for Droplet creation.");
    }
    const tags = Array.isArray(b.tags) ? b.tags.map(String) : [];
    for (const tag of tags) {
      if (!TAG.test(tag)) return this.#invalid(`Tag ${tag} is invalid`);
    }
    const keyIds = Array.isArray(b.ssh_keys) ? b.ssh_keys : [];
    const keys: string[] = [];
    for (const ref of keyIds) {
      const key = [...this.keys.values()].find((k) =>
        k.id === Number(ref) || k.fingerprint === ref
      );
      if (!key) return this.#invalid("You specified an invalid ssh key.");
      keys.push(key.publicKey);
    }
    if (typeof b.user_data === "string" && b.user_data.length > 64 * 1024) {
      return this.#invalid("user_data must be at most 64 KiB");
    }
    const volumeIds = Array.isArray(b.volumes) ? b.volumes.map(String) : [];
    for (const id of volumeIds) {
      const v = this.volumes.get(id);
      if (!v) return this.#invalid("You specified an invalid volume.");
      if (v.region !== b.region) {
        return this.#invalid("Volume and Droplet must be in the same region.");
      }
    }
    for (const tag of tags) this.tags.add(tag);
    const id = this.nextId();
    const userData = typeof b.user_data === "string" ? b.user_data : undefined;
    const droplet: FakeDroplet = {
      id,
      name,
      status: "new",
      size: String(b.size),
      region: String(b.region),
      image: b.image,
      tags: new Set(tags),
      userData,
      volumeIds: new Set(volumeIds),
      slot: this.scheduleMachine({ userData, keys }, () => {
        if (this.droplets.get(id)?.status === "new") droplet.status = "active";
      }),
      createdAt: new Date().toISOString(),
    };
    for (const vid of volumeIds) this.volumes.get(vid)!.dropletIds.push(id);
    this.droplets.set(id, droplet);
    const action = this.#action("create");
    return {
      status: 202,
      body: {
        droplet: this.#dropletJson(droplet),
        links: {
          actions: [{
            id: action.id,
            rel: "create",
            href: `${this.origin}/v2/actions/${action.id}`,
          }],
        },
      },
    };
  }

  async #deleteDroplet(d: FakeDroplet): Promise<void> {
    this.droplets.delete(d.id);
    for (const vid of d.volumeIds) {
      const v = this.volumes.get(vid);
      if (v) v.dropletIds.splice(v.dropletIds.indexOf(d.id), 1);
    }
    await this.destroySlot(d.slot);
  }
}

function keyJson(k: FakeKey): unknown {
  return { id: k.id, name: k.name, public_key: k.publicKey, fingerprint: k.fingerprint };
}

function fingerprintOf(blob: string): string {
  return md5Fingerprint(blob);
}
