/**
 * A fake Hetzner Cloud API v1, written from the public API reference: Bearer auth, servers
 * (create with user_data, labels, volumes and `automount`, answering with the `action`; get; list
 * with `name` and `label_selector`; `PUT` labels, which replaces the whole map; delete answering
 * with an action), actions, SSH keys, volumes, placement groups (names unique per project: a
 * second create of a name is a `uniqueness_error`), pagination in `meta.pagination`,
 * `RateLimit-Limit/Remaining/Reset` headers and errors as `{"error":{"code","message"}}`.
 * Servers are real machines (see `machine_host.ts`).
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

/** A server as the fake stores it. */
export interface FakeServer {
  /** ID. */
  readonly id: number;
  /** Name. */
  readonly name: string;
  /** `initializing`, `starting`, `running`, `off`. */
  status: string;
  /** Server type name. */
  readonly serverType: string;
  /** Location name. */
  readonly location: string;
  /** Image name. */
  readonly image: string;
  /** Labels (replaced wholesale by PUT). */
  labels: Record<string, string>;
  /** The user_data given. */
  readonly userData?: string;
  /** Attached volume IDs. */
  readonly volumeIds: Set<number>;
  /** Its machine. */
  readonly slot: MachineSlot;
  /** Creation time. */
  readonly created: string;
}

/** An SSH key. */
export interface FakeHetznerKey {
  /** ID. */
  readonly id: number;
  /** Name (unique). */
  readonly name: string;
  /** Public key. */
  readonly publicKey: string;
  /** MD5 fingerprint. */
  readonly fingerprint: string;
  /** Labels. */
  labels: Record<string, string>;
}

/** A volume. */
export interface FakeHetznerVolume {
  /** ID. */
  readonly id: number;
  /** Name (unique). */
  readonly name: string;
  /** GB. */
  readonly size: number;
  /** Location. */
  readonly location: string;
  /** Server attached to. */
  server: number | null;
  /** Labels. */
  labels: Record<string, string>;
  /** Whether it was asked to be mounted automatically. */
  readonly automount: boolean;
}

const SERVER_TYPES = new Set(["cx23", "cx33", "cx43", "cx53", "cpx11", "cpx21", "cax11"]);
const LOCATIONS = new Set(["fsn1", "nbg1", "hel1", "ash", "hil", "sin"]);
const IMAGES = new Set(["docker-ce", "ubuntu-24.04", "ubuntu-22.04", "debian-12"]);
const NAME = /^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,61}[a-zA-Z0-9])?$/;
const LABEL_KEY =
  /^([a-z0-9A-Z]([a-z0-9A-Z._-]{0,61}[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([a-z0-9A-Z._-]{0,61}[a-z0-9A-Z])?$/;
const LABEL_VALUE = /^([a-z0-9A-Z]([a-z0-9A-Z._-]{0,61}[a-z0-9A-Z])?)?$/;

/**
 * Whether labels match a selector: comma-separated `k=v`, `k==v`, `k!=v`, `k` (exists),
 * `!k` (does not exist), `k in (a,b)`, `k notin (a,b)`.
 */
export function matchesSelector(labels: Record<string, string>, selector: string): boolean {
  const terms = selector.match(/[^,(]+(\([^)]*\))?/g) ?? [];
  return terms.every((raw) => {
    const term = raw.trim();
    if (term === "") return true;
    let m = term.match(/^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/);
    if (m) {
      const values = m[3].split(",").map((v) => v.trim());
      const has = Object.hasOwn(labels, m[1]) && values.includes(labels[m[1]]);
      return m[2] === "in" ? has : !has;
    }
    m = term.match(/^([^!=]+)(==|!=|=)(.*)$/);
    if (m) {
      const has = Object.hasOwn(labels, m[1].trim()) && labels[m[1].trim()] === m[3].trim();
      return m[2] === "!=" ? !has : has;
    }
    if (term.startsWith("!")) return !Object.hasOwn(labels, term.slice(1));
    return Object.hasOwn(labels, term);
  });
}

/** The fake Hetzner Cloud API. */
export class FakeHetzner extends FakeCloud {
  /** Servers by ID. */
  readonly servers = new Map<number, FakeServer>();
  /** Keys by ID. */
  readonly keys = new Map<number, FakeHetznerKey>();
  /** Volumes by ID. */
  readonly volumes = new Map<number, FakeHetznerVolume>();
  /** Placement groups by ID. */
  readonly placementGroups = new Map<
    number,
    { id: number; name: string; labels: Record<string, string>; created: string }
  >();
  /** Actions by ID (status flips to success when polled after the activation delay). */
  readonly actions = new Map<
    number,
    { id: number; command: string; status: string; progress: number; doneAt: number }
  >();
  protected prefix = "/v1";

  /** Starts the fake. */
  constructor(options: FakeOptions = {}) {
    super({ rateLimit: 3600, ...options });
  }

  /** `http://127.0.0.1:PORT/v1`. */
  get url(): string {
    return `${this.origin}/v1`;
  }

  protected errorBody(status: number, code: string, message: string): unknown {
    const real = status === 404
      ? "not_found"
      : status === 429
      ? "rate_limit_exceeded"
      : status === 401
      ? "unauthorized"
      : code;
    return { error: { code: real, message, details: {} } };
  }

  protected rateHeaders(): Record<string, string> {
    return {
      "RateLimit-Limit": String(this.rateLimit),
      "RateLimit-Remaining": String(Math.max(0, this.remaining)),
      "RateLimit-Reset": String(Math.ceil(this.resetAt / 1000)),
    };
  }

  #invalid(field: string, message: string): Reply {
    return {
      status: 400,
      body: {
        error: {
          code: "invalid_input",
          message: `invalid input in field '${field}'`,
          details: { fields: [{ name: field, messages: [message] }] },
        },
      },
    };
  }

  #notFound(what: string): Reply {
    return { status: 404, body: this.errorBody(404, "not_found", `${what} not found`) };
  }

  #page<T>(key: string, items: readonly T[], query: URLSearchParams): Reply {
    const { page, perPage, lastPage, items: slice } = paginate(items, query, 25, 50);
    return {
      status: 200,
      body: {
        [key]: slice,
        meta: {
          pagination: {
            page,
            per_page: perPage,
            previous_page: page > 1 ? page - 1 : null,
            next_page: page < lastPage ? page + 1 : null,
            last_page: lastPage,
            total_entries: items.length,
          },
        },
      },
    };
  }

  #action(command: string, delayMs = 0): unknown {
    const action = {
      id: this.nextId(),
      command,
      status: delayMs > 0 ? "running" : "success",
      progress: delayMs > 0 ? 0 : 100,
      doneAt: Date.now() + delayMs,
    };
    this.actions.set(action.id, action);
    return actionJson(action);
  }

  #serverJson(s: FakeServer): unknown {
    return {
      id: s.id,
      name: s.name,
      status: s.status,
      created: s.created,
      server_type: { name: s.serverType },
      datacenter: { location: { name: s.location } },
      image: { name: s.image },
      labels: s.labels,
      volumes: [...s.volumeIds],
      public_net: {
        ipv4: s.status === "running" || s.status === "off"
          ? { ip: s.slot.ip, blocked: false }
          : null,
        ipv6: null,
      },
    };
  }

  #volumeJson(v: FakeHetznerVolume): unknown {
    return {
      id: v.id,
      name: v.name,
      size: v.size,
      location: { name: v.location },
      server: v.server,
      labels: v.labels,
      linux_device: `/dev/disk/by-id/scsi-0HC_Volume_${v.id}`,
      status: "available",
    };
  }

  #labelsOk(labels: unknown): string | undefined {
    if (labels === undefined) return undefined;
    if (typeof labels !== "object" || labels === null) return "must be an object";
    for (const [k, v] of Object.entries(labels)) {
      if (!LABEL_KEY.test(k)) return `label key ${JSON.stringify(k)} is invalid`;
      if (typeof v !== "string" || !LABEL_VALUE.test(v)) {
        return `label value ${JSON.stringify(v)} is invalid`;
      }
    }
    return undefined;
  }

  protected async handle(
    method: string,
    path: string,
    query: URLSearchParams,
    body: unknown,
  ): Promise<Reply> {
    const b = (body ?? {}) as Record<string, unknown>;
    const parts = path.split("/").filter(Boolean);
    const id = Number(parts[1]);
    const selector = query.get("label_selector");
    const name = query.get("name");
    const filter = <T extends { name: string; labels: Record<string, string> }>(list: T[]) =>
      list.filter((x) =>
        (!name || x.name === name) && (!selector || matchesSelector(x.labels, selector))
      );
    if (parts[0] === "servers") {
      if (method === "POST" && parts.length === 1) return this.#createServer(b);
      if (method === "GET" && parts.length === 1) {
        return this.#page(
          "servers",
          filter([...this.servers.values()]).map((s) => this.#serverJson(s)),
          query,
        );
      }
      const s = this.servers.get(id);
      if (!s) return this.#notFound("server");
      if (method === "GET" && parts.length === 2) {
        return { status: 200, body: { server: this.#serverJson(s) } };
      }
      if (method === "PUT" && parts.length === 2) {
        const problem = this.#labelsOk(b.labels);
        if (problem) return this.#invalid("labels", problem);
        if (b.labels !== undefined) s.labels = { ...(b.labels as Record<string, string>) };
        return { status: 200, body: { server: this.#serverJson(s) } };
      }
      if (method === "DELETE" && parts.length === 2) {
        this.servers.delete(s.id);
        for (const vid of s.volumeIds) {
          const v = this.volumes.get(vid);
          if (v) v.server = null;
        }
        await this.destroySlot(s.slot);
        return { status: 200, body: { action: this.#action("delete_server") } };
      }
      if (method === "POST" && parts[2] === "actions" && parts[3] === "poweroff") {
        s.status = "off";
        return { status: 201, body: { action: this.#action("stop_server") } };
      }
      return this.#notFound("route");
    }
    if (parts[0] === "actions" && method === "GET" && parts.length === 2) {
      const a = this.actions.get(id);
      if (!a) return this.#notFound("action");
      if (a.status === "running" && Date.now() >= a.doneAt) {
        Object.assign(a, { status: "success", progress: 100 });
      }
      return { status: 200, body: { action: actionJson(a) } };
    }
    if (parts[0] === "ssh_keys") {
      if (method === "POST" && parts.length === 1) {
        const keyName = String(b.name ?? "");
        const publicKey = String(b.public_key ?? "").trim();
        if (keyName === "") return this.#invalid("name", "is required");
        if (!/^ssh-(ed25519|rsa) [A-Za-z0-9+/=]+/.test(publicKey)) {
          return this.#invalid("public_key", "is invalid");
        }
        const problem = this.#labelsOk(b.labels);
        if (problem) return this.#invalid("labels", problem);
        const fingerprint = md5Fingerprint(publicKey.split(" ")[1]);
        if (
          [...this.keys.values()].some((k) => k.name === keyName || k.fingerprint === fingerprint)
        ) {
          return {
            status: 409,
            body: {
              error: {
                code: "uniqueness_error",
                message: "SSH key with the same name or fingerprint already exists",
                details: {},
              },
            },
          };
        }
        const key: FakeHetznerKey = {
          id: this.nextId(),
          name: keyName,
          publicKey,
          fingerprint,
          labels: { ...(b.labels as Record<string, string> ?? {}) },
        };
        this.keys.set(key.id, key);
        return { status: 201, body: { ssh_key: keyJson(key) } };
      }
      if (method === "GET" && parts.length === 1) {
        return this.#page("ssh_keys", filter([...this.keys.values()]).map(keyJson), query);
      }
      const key = this.keys.get(id);
      if (!key) return this.#notFound("ssh_key");
      if (method === "GET") return { status: 200, body: { ssh_key: keyJson(key) } };
      if (method === "DELETE") {
        this.keys.delete(id);
        return { status: 204 };
      }
    }
    if (parts[0] === "placement_groups") {
      if (method === "POST" && parts.length === 1) {
        const groupName = String(b.name ?? "");
        if (groupName === "") return this.#invalid("name", "is required");
        if (b.type !== "spread") return this.#invalid("type", "must be spread");
        const problem = this.#labelsOk(b.labels);
        if (problem) return this.#invalid("labels", problem);
        if ([...this.placementGroups.values()].some((g) => g.name === groupName)) {
          return {
            status: 409,
            body: {
              error: {
                code: "uniqueness_error",
                message: "placement group name is already used",
                details: { fields: [{ name: "name" }] },
              },
            },
          };
        }
        const group = {
          id: this.nextId(),
          name: groupName,
          labels: { ...(b.labels as Record<string, string> ?? {}) },
          created: new Date().toISOString(),
        };
        this.placementGroups.set(group.id, group);
        return {
          status: 201,
          body: { placement_group: placementGroupJson(group), action: null },
        };
      }
      if (method === "GET" && parts.length === 1) {
        return this.#page(
          "placement_groups",
          filter([...this.placementGroups.values()]).map(placementGroupJson),
          query,
        );
      }
      const group = this.placementGroups.get(id);
      if (!group) return this.#notFound("placement_group");
      if (method === "GET") {
        return { status: 200, body: { placement_group: placementGroupJson(group) } };
      }
      if (method === "DELETE") {
        this.placementGroups.delete(id);
        return { status: 204 };
      }
    }
    if (parts[0] === "volumes") {
      if (method === "POST" && parts.length === 1) {
        const volName = String(b.name ?? "");
        const size = Number(b.size);
        if (!NAME.test(volName)) return this.#invalid("name", "is invalid");
        if (!Number.isInteger(size) || size < 10 || size > 10_240) {
          return this.#invalid("size", "must be between 10 and 10240");
        }
        const problem = this.#labelsOk(b.labels);
        if (problem) return this.#invalid("labels", problem);
        if ([...this.volumes.values()].some((v) => v.name === volName)) {
          return {
            status: 409,
            body: {
              error: {
                code: "uniqueness_error",
                message: "volume name is already used",
                details: {},
              },
            },
          };
        }
        let location = typeof b.location === "string" ? b.location : undefined;
        let server: FakeServer | undefined;
        if (b.server !== undefined) {
          server = this.servers.get(Number(b.server));
          if (!server) return this.#invalid("server", "not found");
          location = server.location;
        }
        if (!location || !LOCATIONS.has(location)) return this.#invalid("location", "is invalid");
        const volume: FakeHetznerVolume = {
          id: this.nextId(),
          name: volName,
          size,
          location,
          server: server?.id ?? null,
          labels: { ...(b.labels as Record<string, string> ?? {}) },
          automount: b.automount === true,
        };
        server?.volumeIds.add(volume.id);
        this.volumes.set(volume.id, volume);
        return {
          status: 201,
          body: {
            volume: this.#volumeJson(volume),
            action: this.#action("create_volume"),
            next_actions: [],
          },
        };
      }
      if (method === "GET" && parts.length === 1) {
        return this.#page(
          "volumes",
          filter([...this.volumes.values()]).map((v) => this.#volumeJson(v)),
          query,
        );
      }
      const v = this.volumes.get(id);
      if (!v) return this.#notFound("volume");
      if (method === "GET" && parts.length === 2) {
        return { status: 200, body: { volume: this.#volumeJson(v) } };
      }
      if (method === "DELETE" && parts.length === 2) {
        if (v.server !== null) {
          return {
            status: 423,
            body: {
              error: { code: "locked", message: "volume is attached to a server", details: {} },
            },
          };
        }
        this.volumes.delete(id);
        return { status: 204 };
      }
      if (method === "POST" && parts[2] === "actions" && parts[3] === "attach") {
        const s = this.servers.get(Number(b.server));
        if (!s) return this.#invalid("server", "not found");
        v.server = s.id;
        s.volumeIds.add(v.id);
        return { status: 201, body: { action: this.#action("attach_volume") } };
      }
      if (method === "POST" && parts[2] === "actions" && parts[3] === "detach") {
        if (v.server !== null) this.servers.get(v.server)?.volumeIds.delete(v.id);
        v.server = null;
        return { status: 201, body: { action: this.#action("detach_volume") } };
      }
    }
    return this.#notFound("route");
  }

  #createServer(b: Record<string, unknown>): Reply {
    const name = String(b.name ?? "");
    if (!NAME.test(name)) return this.#invalid("name", "must be a valid hostname");
    if ([...this.servers.values()].some((s) => s.name === name)) {
      return {
        status: 409,
        body: {
          error: { code: "uniqueness_error", message: "server name is already used", details: {} },
        },
      };
    }
    if (!SERVER_TYPES.has(String(b.server_type))) {
      return this.#invalid("server_type", "server type not found");
    }
    if (!IMAGES.has(String(b.image))) return this.#invalid("image", "image not found");
    if (b.location !== undefined && !LOCATIONS.has(String(b.location))) {
      return this.#invalid("location", "location not found");
    }
    const problem = this.#labelsOk(b.labels);
    if (problem) return this.#invalid("labels", problem);
    const keys: string[] = [];
    for (const ref of Array.isArray(b.ssh_keys) ? b.ssh_keys : []) {
      const key = [...this.keys.values()].find((k) => k.id === Number(ref) || k.name === ref);
      if (!key) return this.#invalid("ssh_keys", `ssh key ${ref} not found`);
      keys.push(key.publicKey);
    }
    if (typeof b.user_data === "string" && b.user_data.length > 32 * 1024) {
      return this.#invalid("user_data", "is too long");
    }
    const volumeIds = (Array.isArray(b.volumes) ? b.volumes : []).map(Number);
    for (const vid of volumeIds) {
      const v = this.volumes.get(vid);
      if (!v) return this.#invalid("volumes", `volume ${vid} not found`);
      if (v.server !== null) return this.#invalid("volumes", `volume ${vid} is already attached`);
    }
    const id = this.nextId();
    const userData = typeof b.user_data === "string" ? b.user_data : undefined;
    const server: FakeServer = {
      id,
      name,
      status: "initializing",
      serverType: String(b.server_type),
      location: String(b.location ?? "nbg1"),
      image: String(b.image),
      labels: { ...(b.labels as Record<string, string> ?? {}) },
      userData,
      volumeIds: new Set(volumeIds),
      slot: this.scheduleMachine({ userData, keys }, () => {
        if (this.servers.get(id)?.status === "initializing") server.status = "running";
      }),
      created: new Date().toISOString(),
    };
    for (const vid of volumeIds) this.volumes.get(vid)!.server = id;
    this.servers.set(id, server);
    return {
      status: 201,
      body: {
        server: this.#serverJson(server),
        action: this.#action("create_server", this.activationDelayMs),
        next_actions: [this.#action("start_server", this.activationDelayMs)],
        root_password: null,
      },
    };
  }
}

function actionJson(a: { id: number; command: string; status: string; progress: number }): unknown {
  return { id: a.id, command: a.command, status: a.status, progress: a.progress, error: null };
}

function placementGroupJson(
  g: { id: number; name: string; labels: Record<string, string>; created: string },
): unknown {
  return {
    id: g.id,
    name: g.name,
    labels: g.labels,
    type: "spread",
    created: g.created,
    servers: [],
  };
}

function keyJson(k: FakeHetznerKey): unknown {
  return {
    id: k.id,
    name: k.name,
    public_key: k.publicKey,
    fingerprint: k.fingerprint,
    labels: k.labels,
  };
}
