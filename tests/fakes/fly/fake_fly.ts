/**
 * A fake Fly Machines REST API (`https://api.machines.dev/v1`), written from Fly's public
 * Machines API reference, whose machines run as containers on the local Docker engine.
 *
 * What it reproduces, because the driver depends on it:
 * - auth: `Authorization: Bearer <token>` (or `FlyV1 <token>`), else 401 `{"error": ...}`;
 * - apps: `POST /v1/apps {app_name, org_slug}`, `GET`/`DELETE /v1/apps/{app}` (a delete destroys
 *   the app's machines and volumes);
 * - machines: `POST /v1/apps/{app}/machines {name, region, config}` with `config` {image,
 *   init.exec, env, guest {cpu_kind, cpus, memory_mb}, restart {policy}, auto_destroy, mounts
 *   [{volume, path}], files [{guest_path, raw_value}], metadata}, validated with Fly's error
 *   bodies; `GET` (with `events`, newest first: the `exit` event carries `request.exit_event
 *   {exit_code, oom_killed, signal}`), `GET .../events`, list with `metadata.<key>=<value>`
 *   filters, `POST .../stop {signal, timeout}`, `DELETE ...?force=true` (without force a
 *   running machine is refused), `POST .../exec {cmd|command, timeout}` ->
 *   `{exit_code, stdout, stderr}`;
 * - `GET .../wait?state=started|stopped|destroyed&timeout=N`: `timeout` is capped at
 *   {@link FakeFlyOptions.maxWaitSeconds} (Fly: 60 s) and an expired wait is a 408, never a
 *   success;
 * - `auto_destroy`: a machine is destroyed once it stops; restart policy `no` only restarts never;
 * - volumes: `POST/GET/DELETE /v1/apps/{app}/volumes` (names `[a-z0-9_]{1,30}`, a region), each
 *   a Docker volume; a volume attaches to one machine at a time (a second machine mounting it
 *   while the first is not destroyed is a 422 saying so), and one attached to a machine cannot
 *   be deleted;
 * - `init`: `exec` replaces the image's ENTRYPOINT and CMD; without it `entrypoint` and `cmd`
 *   replace them one by one (a replaced entrypoint drops the image's CMD, as in OCI runtimes);
 * - private networking: every machine of the fake is a container on one Docker network of its
 *   own, and `private_ip` is its address there (Fly's is an IPv6 6PN address), so machines reach
 *   each other by it;
 * - app logs (`GET /api/v1/apps/{app}/logs?instance=<machine>&next_token=<t>`, on Fly's
 *   `api.fly.io`): the machines' output lines as `{data: [{id, attributes: {timestamp, message,
 *   level, instance, region, meta: {event: {provider: "app"}}}}], meta: {next_token}}`, all at
 *   level `info` (stdout and stderr alike), with init's own lines ("Starting init", "Main child
 *   exited ...") among them, each visible only {@link FakeFlyOptions.logDelayMs} after it was
 *   printed (Fly's log pipeline), and kept after the machine is destroyed;
 * - faults: {@link FakeFly.faults} makes chosen requests answer 429 or 5xx.
 *
 * Not reproduced: regions' placement, the GraphQL API, DNS names on the private network.
 *
 * @module
 */

/** Knobs of the fake. */
export interface FakeFlyOptions {
  /** The accepted token (default `fly-test-token`). */
  readonly token?: string;
  /** The longest `wait` timeout in seconds (Fly: 60); larger requests are capped. */
  readonly maxWaitSeconds?: number;
  /** How long a machine's output line takes to show in the logs API (default 300 ms). */
  readonly logDelayMs?: number;
}

/** An injected failure: the next `times` requests matching get `status`. */
export interface FlyFault {
  /** Only this method (default any). */
  readonly method?: string;
  /** Only paths matching (default any). */
  readonly path?: RegExp;
  /** 429 or 5xx. */
  readonly status: number;
  /** How many requests fail. */
  times: number;
}

/** One request the fake received. */
export interface FlyRequestLog {
  /** Method. */
  readonly method: string;
  /** Path without the query. */
  readonly path: string;
  /** Query parameters. */
  readonly query: URLSearchParams;
  /** JSON body. */
  body: unknown;
  /** Status answered. */
  status: number;
}

/** A machine of the fake. */
export interface FakeMachine {
  /** Machine ID. */
  readonly id: string;
  /** Name. */
  readonly name: string;
  /** The app. */
  readonly app: string;
  /** `created`, `started`, `stopping`, `stopped`, `destroyed`. */
  state: string;
  /** The config as sent. */
  readonly config: Record<string, unknown>;
  /** Region. */
  readonly region: string;
  /** Events, newest first. */
  readonly events: Record<string, unknown>[];
  /** The container running it. */
  container?: string;
  /** Volume IDs it mounts. */
  readonly volumes: string[];
  /** Resolves once it stopped. */
  stopped: Promise<void>;
  /** Settles `stopped`. */
  markStopped?: () => void;
  /** Created at (ISO). */
  readonly createdAt: string;
  /** Settles once it is destroyed and its container removed. */
  destroying?: Promise<void>;
  /** Its address on the fake's private network. */
  privateIp?: string;
  /** Settles once every output line of its container was taken into the app's logs. */
  logsDone?: Promise<void>;
}

/** One app log line of the fake. */
interface FakeLogLine {
  /** When the logs API shows it (Fly's log pipeline takes a moment). */
  readonly visibleAt: number;
  readonly id: string;
  readonly timestamp: string;
  readonly message: string;
  readonly level: "info" | "error";
  readonly instance: string;
  readonly region: string;
}

/** A volume of the fake. */
export interface FakeVolume {
  /** `vol_...`. */
  readonly id: string;
  /** Name. */
  readonly name: string;
  /** Region. */
  readonly region: string;
  /** Size. */
  readonly sizeGb: number;
  /** The Docker volume behind it. */
  readonly dockerName: string;
  /** The machine it is attached to. */
  attachedTo?: string;
  /** Created at (ISO). */
  readonly createdAt: string;
}

interface FakeApp {
  readonly name: string;
  readonly org: string;
  readonly machines: Map<string, FakeMachine>;
  readonly volumes: Map<string, FakeVolume>;
  readonly logs: FakeLogLine[];
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const MACHINE_STATES = new Set(["started", "stopped", "destroyed", "suspended"]);
const CPU_KINDS = new Set(["shared", "performance"]);
const VOLUME_NAME = /^[a-z0-9_]{1,30}$/;
const APP_NAME = /^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$/;
/** The label every container and Docker volume of the fake carries, for leak checks. */
export const FAKE_FLY_LABEL = "pocketci-fake-fly";
/** The label naming the fake instance (one per test process) that made a container or volume. */
export const FAKE_FLY_INSTANCE_LABEL = "pocketci-fake-fly-instance";

async function docker(
  args: string[],
  stdin?: Uint8Array,
): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  const child = new Deno.Command("docker", {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin).catch(() => {});
    await writer.close().catch(() => {});
  }
  const out = await child.output();
  return { code: out.code, stdout: out.stdout, stderr: new TextDecoder().decode(out.stderr) };
}

async function dockerOk(args: string[]): Promise<string> {
  const out = await docker(args);
  if (out.code !== 0) throw new Error(`docker ${args[0]}: ${out.stderr.trim()}`);
  return new TextDecoder().decode(out.stdout).trim();
}

function hex(n: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function signalNumber(name: unknown): number | undefined {
  const table: Record<string, number> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGKILL: 9,
    SIGUSR1: 10,
    SIGUSR2: 12,
    SIGTERM: 15,
  };
  return typeof name === "string" ? table[name.toUpperCase()] : undefined;
}

function exitEvent(code: number, oom: boolean, signal: number | undefined) {
  return {
    type: "exit",
    status: "stopped",
    source: "flyd",
    timestamp: Date.now(),
    request: {
      exit_event: {
        exit_code: code,
        oom_killed: oom,
        guest_exit_code: code,
        signal: signal ?? -1,
        exited_at: new Date().toISOString(),
      },
      restarting: false,
    },
  };
}

/** The fake API server. */
export class FakeFly {
  /** Every request, in order. */
  readonly requests: FlyRequestLog[] = [];
  /** Injected failures. */
  readonly faults: FlyFault[] = [];
  /** The apps. */
  readonly apps = new Map<string, FakeApp>();
  /** The accepted token. */
  readonly token: string;
  /** This instance's ID (the value of {@link FAKE_FLY_INSTANCE_LABEL}). */
  readonly instance: string = hex(6);
  /** The cap on `wait` timeouts, in seconds. */
  maxWaitSeconds: number;
  /** How long a log line takes to show in the logs API, in ms. */
  logDelayMs: number;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #pending = new Set<Promise<unknown>>();
  #network: Promise<string> | undefined;

  /** Starts the server on 127.0.0.1. */
  constructor(options: FakeFlyOptions = {}) {
    this.token = options.token ?? "fly-test-token";
    this.maxWaitSeconds = options.maxWaitSeconds ?? 60;
    this.logDelayMs = options.logDelayMs ?? 300;
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => this.#serve(request),
    );
  }

  /** The base URL (what `FLY_API_URL` takes). */
  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** Adds an app, as if made with `fly apps create` (an existing app for the driver). */
  addApp(name: string, org = "personal"): void {
    this.apps.set(name, { name, org, machines: new Map(), volumes: new Map(), logs: [] });
  }

  /** Requests matching a method and path. */
  count(method: string, path: RegExp): number {
    return this.requests.filter((r) => r.method === method && path.test(r.path)).length;
  }

  /** Every machine of every app not destroyed. */
  liveMachines(): FakeMachine[] {
    return [...this.apps.values()].flatMap((app) => [...app.machines.values()])
      .filter((m) => m.state !== "destroyed");
  }

  /** Every volume of every app. */
  allVolumes(): FakeVolume[] {
    return [...this.apps.values()].flatMap((app) => [...app.volumes.values()]);
  }

  /** Stops the server and removes every container and Docker volume it made. */
  async close(): Promise<void> {
    for (const app of [...this.apps.values()]) await this.#deleteApp(app);
    await Promise.allSettled([...this.#pending]);
    if (this.#network !== undefined) {
      const network = await this.#network.catch(() => undefined);
      if (network !== undefined) await docker(["network", "rm", network]);
    }
    await this.#server.shutdown();
  }

  /** The fake's private network (a Docker network made at the first machine). */
  #privateNetwork(): Promise<string> {
    this.#network ??= (async () => {
      const name = `fakefly-6pn-${this.instance}`;
      await dockerOk([
        "network",
        "create",
        "--label",
        FAKE_FLY_LABEL,
        "--label",
        `${FAKE_FLY_INSTANCE_LABEL}=${this.instance}`,
        name,
      ]);
      return name;
    })();
    return this.#network;
  }

  async #serve(request: Request): Promise<Response> {
    const url = new URL(request.url);
    let body: unknown;
    const text = await request.text();
    const log: FlyRequestLog = {
      method: request.method,
      path: url.pathname,
      query: url.searchParams,
      body: undefined,
      status: 0,
    };
    this.requests.push(log);
    const reply = (status: number, value?: unknown): Response => {
      log.status = status;
      return new Response(value === undefined ? null : JSON.stringify(value), {
        status,
        headers: value === undefined ? {} : { "content-type": "application/json" },
      });
    };
    const auth = request.headers.get("authorization") ?? "";
    const match = /^(Bearer|FlyV1) (.+)$/.exec(auth);
    if (!match || match[2] !== this.token) {
      return reply(401, { error: "You must be authenticated to view this." });
    }
    const fault = this.faults.find((f) =>
      f.times > 0 && (f.method === undefined || f.method === request.method) &&
      (f.path === undefined || f.path.test(url.pathname))
    );
    if (fault) {
      fault.times--;
      return reply(fault.status, {
        error: fault.status === 429 ? "rate limit exceeded" : "internal error",
      });
    }
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        return reply(400, { error: "invalid JSON body" });
      }
    }
    log.body = body;
    try {
      const result = await this.#route(request.method, url.pathname, url.searchParams, body);
      return reply(result.status, result.body);
    } catch (error) {
      if (error instanceof HttpError) return reply(error.status, { error: error.message });
      return reply(500, { error: (error as Error).message });
    }
  }

  #app(name: string): FakeApp {
    const app = this.apps.get(name);
    if (!app) throw new HttpError(404, `app not found`);
    return app;
  }

  #machine(app: FakeApp, id: string): FakeMachine {
    const machine = app.machines.get(id);
    if (!machine) throw new HttpError(404, `machine not found`);
    return machine;
  }

  async #route(
    method: string,
    path: string,
    query: URLSearchParams,
    body: unknown,
  ): Promise<{ status: number; body?: unknown }> {
    const parts = path.split("/").filter((p) => p !== "");
    if (
      parts[0] === "api" && parts[1] === "v1" && parts[2] === "apps" && parts[4] === "logs" &&
      parts.length === 5 && method === "GET"
    ) {
      return this.#logs(this.#app(decodeURIComponent(parts[3])), query);
    }
    if (parts[0] !== "v1" || parts[1] !== "apps") throw new HttpError(404, "not found");
    const b = (body ?? {}) as Record<string, unknown>;
    if (parts.length === 2 && method === "POST") return this.#createApp(b);
    const app = this.#app(decodeURIComponent(parts[2] ?? ""));
    if (parts.length === 3) {
      if (method === "GET") {
        return { status: 200, body: { name: app.name, organization: { slug: app.org } } };
      }
      if (method === "DELETE") {
        await this.#deleteApp(app);
        return { status: 202 };
      }
    }
    if (parts[3] === "volumes") return await this.#volumes(app, method, parts[4], b);
    if (parts[3] !== "machines") throw new HttpError(404, "not found");
    if (parts.length === 4 && method === "POST") return await this.#createMachine(app, b);
    if (parts.length === 4 && method === "GET") {
      const filters = [...query.entries()].filter(([k]) => k.startsWith("metadata."));
      const list = [...app.machines.values()].filter((m) =>
        m.state !== "destroyed" &&
        filters.every(([k, v]) =>
          (m.config.metadata as Record<string, string> | undefined)?.[k.slice(9)] === v
        )
      );
      return { status: 200, body: list.map((m) => this.#machineJson(m)) };
    }
    const machine = this.#machine(app, parts[4]);
    const action = parts[5];
    if (action === undefined && method === "GET") {
      return { status: 200, body: this.#machineJson(machine) };
    }
    if (action === undefined && method === "DELETE") {
      if (
        machine.state !== "stopped" && machine.state !== "destroyed" &&
        query.get("force") !== "true"
      ) {
        throw new HttpError(412, "failed_precondition: machine still active, refusing to destroy");
      }
      await this.#destroy(app, machine);
      return { status: 200, body: { ok: true } };
    }
    if (action === "events" && method === "GET") return { status: 200, body: machine.events };
    if (action === "wait" && method === "GET") return await this.#wait(machine, query);
    if (action === "stop" && method === "POST") return this.#stop(machine, b);
    if (action === "exec" && method === "POST") return await this.#exec(machine, b);
    throw new HttpError(404, "not found");
  }

  #createApp(b: Record<string, unknown>): { status: number; body?: unknown } {
    const name = b.app_name;
    if (typeof name !== "string" || !APP_NAME.test(name)) {
      throw new HttpError(400, `app_name must be lowercase letters, digits and dashes`);
    }
    if (typeof b.org_slug !== "string" || b.org_slug === "") {
      throw new HttpError(400, "org_slug is required");
    }
    if (this.apps.has(name)) throw new HttpError(422, `app name "${name}" is already taken`);
    this.apps.set(name, {
      name,
      org: b.org_slug,
      machines: new Map(),
      volumes: new Map(),
      logs: [],
    });
    return { status: 201, body: { id: name, created_at: Date.now() } };
  }

  async #deleteApp(app: FakeApp): Promise<void> {
    for (const machine of app.machines.values()) await this.#destroy(app, machine);
    for (const volume of app.volumes.values()) {
      await docker(["volume", "rm", "-f", volume.dockerName]);
    }
    this.apps.delete(app.name);
  }

  async #volumes(
    app: FakeApp,
    method: string,
    id: string | undefined,
    b: Record<string, unknown>,
  ): Promise<{ status: number; body?: unknown }> {
    const json = (v: FakeVolume) => ({
      id: v.id,
      name: v.name,
      region: v.region,
      size_gb: v.sizeGb,
      state: "created",
      attached_machine_id: v.attachedTo ?? null,
      created_at: v.createdAt,
    });
    if (id === undefined && method === "GET") {
      return { status: 200, body: [...app.volumes.values()].map(json) };
    }
    if (id === undefined && method === "POST") {
      if (typeof b.name !== "string" || !VOLUME_NAME.test(b.name)) {
        throw new HttpError(
          400,
          "volume name must be 1-30 lowercase letters, digits and underscores",
        );
      }
      if (typeof b.region !== "string" || b.region === "") {
        throw new HttpError(400, "region is required");
      }
      const size = b.size_gb ?? 1;
      if (typeof size !== "number" || !Number.isInteger(size) || size < 1 || size > 500) {
        throw new HttpError(400, "size_gb must be an integer from 1 to 500");
      }
      const volume: FakeVolume = {
        id: `vol_${hex(8)}`,
        name: b.name,
        region: b.region,
        sizeGb: size,
        dockerName: `fakefly_${hex(8)}`,
        createdAt: new Date().toISOString(),
      };
      await dockerOk([
        "volume",
        "create",
        "--label",
        FAKE_FLY_LABEL,
        "--label",
        `${FAKE_FLY_INSTANCE_LABEL}=${this.instance}`,
        volume.dockerName,
      ]);
      app.volumes.set(volume.id, volume);
      return { status: 200, body: json(volume) };
    }
    const volume = app.volumes.get(id ?? "");
    if (!volume) throw new HttpError(404, "volume not found");
    if (method === "GET") return { status: 200, body: json(volume) };
    if (method === "DELETE") {
      if (volume.attachedTo !== undefined) {
        throw new HttpError(
          422,
          `volume ${volume.id} is attached to machine ${volume.attachedTo}; destroy the machine first`,
        );
      }
      await docker(["volume", "rm", "-f", volume.dockerName]);
      app.volumes.delete(volume.id);
      return { status: 200, body: json(volume) };
    }
    throw new HttpError(404, "not found");
  }

  #validateConfig(app: FakeApp, config: Record<string, unknown>): FakeVolume[] {
    if (typeof config.image !== "string" || config.image === "") {
      throw new HttpError(400, "config.image is required");
    }
    const init = config.init as Record<string, unknown> | undefined;
    if (
      init?.exec !== undefined &&
      (!Array.isArray(init.exec) || init.exec.some((a) => typeof a !== "string"))
    ) throw new HttpError(400, "config.init.exec must be an array of strings");
    for (const key of ["entrypoint", "cmd"]) {
      const value = init?.[key];
      if (
        value !== undefined &&
        (!Array.isArray(value) || value.some((a) => typeof a !== "string"))
      ) throw new HttpError(400, `config.init.${key} must be an array of strings`);
    }
    const env = config.env as Record<string, unknown> | undefined;
    if (env !== undefined && Object.values(env).some((v) => typeof v !== "string")) {
      throw new HttpError(400, "config.env values must be strings");
    }
    const guest = config.guest as Record<string, unknown> | undefined;
    if (guest !== undefined) {
      if (!CPU_KINDS.has(String(guest.cpu_kind))) {
        throw new HttpError(400, `invalid cpu_kind "${guest.cpu_kind}"`);
      }
      const cpus = Number(guest.cpus);
      const memory = Number(guest.memory_mb);
      if (![1, 2, 4, 6, 8, 10, 12, 14, 16].includes(cpus)) {
        throw new HttpError(400, `invalid number of cpus ${guest.cpus}`);
      }
      const unit = guest.cpu_kind === "shared" ? 256 : 1024;
      if (!Number.isInteger(memory) || memory < 256 || memory % unit !== 0) {
        throw new HttpError(
          400,
          `invalid memory size ${guest.memory_mb}; must be a multiple of ${unit} MB`,
        );
      }
    }
    const restart = config.restart as Record<string, unknown> | undefined;
    if (restart !== undefined && !["no", "always", "on-failure"].includes(String(restart.policy))) {
      throw new HttpError(400, `invalid restart policy "${restart.policy}"`);
    }
    const volumes: FakeVolume[] = [];
    for (const mount of (config.mounts ?? []) as Record<string, unknown>[]) {
      const volume = app.volumes.get(String(mount.volume));
      if (!volume) throw new HttpError(404, `volume ${mount.volume} not found`);
      if (typeof mount.path !== "string" || !mount.path.startsWith("/")) {
        throw new HttpError(400, "mount path must be absolute");
      }
      if (volume.attachedTo !== undefined) {
        throw new HttpError(
          422,
          `volume ${volume.id} is already attached to machine ${volume.attachedTo} (a Fly volume attaches to one machine at a time)`,
        );
      }
      volumes.push(volume);
    }
    return volumes;
  }

  async #createMachine(
    app: FakeApp,
    b: Record<string, unknown>,
  ): Promise<{ status: number; body?: unknown }> {
    const config = b.config as Record<string, unknown> | undefined;
    if (!config || typeof config !== "object") throw new HttpError(400, "config is required");
    const volumes = this.#validateConfig(app, config);
    const image = String(config.image);
    if ((await docker(["image", "inspect", image])).code !== 0) {
      throw new HttpError(422, `failed to get manifest ${image}: not found`);
    }
    const id = hex(7);
    const region = typeof b.region === "string" && b.region !== "" ? b.region : "iad";
    let settle: () => void = () => {};
    const stopped = new Promise<void>((resolve) => settle = resolve);
    const machine: FakeMachine = {
      id,
      name: typeof b.name === "string" && b.name !== "" ? b.name : `machine-${id}`,
      app: app.name,
      state: "created",
      config,
      region,
      events: [],
      volumes: volumes.map((v) => v.id),
      stopped,
      markStopped: settle,
      createdAt: new Date().toISOString(),
    };
    for (const volume of volumes) volume.attachedTo = id;
    app.machines.set(id, machine);
    const guest = config.guest as Record<string, number> | undefined;
    const args = [
      "create",
      "--label",
      `${FAKE_FLY_LABEL}=${app.name}`,
      "--label",
      `${FAKE_FLY_INSTANCE_LABEL}=${this.instance}`,
      "--init=false",
      "--network",
      await this.#privateNetwork(),
    ];
    if (guest) args.push("--memory", `${guest.memory_mb}m`, "--cpus", String(guest.cpus));
    for (const [k, v] of Object.entries((config.env ?? {}) as Record<string, string>)) {
      args.push("--env", `${k}=${v}`);
    }
    const mounts = (config.mounts ?? []) as { volume: string; path: string }[];
    for (const mount of mounts) {
      args.push(
        "--mount",
        `type=volume,src=${app.volumes.get(mount.volume)!.dockerName},dst=${mount.path}`,
      );
    }
    const init = (config.init ?? {}) as { exec?: string[]; entrypoint?: string[]; cmd?: string[] };
    if (init.exec !== undefined && init.exec.length > 0) {
      args.push("--entrypoint", init.exec[0], image, ...init.exec.slice(1));
    } else if (init.entrypoint !== undefined && init.entrypoint.length > 0) {
      args.push("--entrypoint", init.entrypoint[0], image, ...init.entrypoint.slice(1));
      args.push(...(init.cmd ?? []));
    } else args.push(image, ...(init.cmd ?? []));
    const created = await docker(args);
    if (created.code !== 0) {
      for (const volume of volumes) volume.attachedTo = undefined;
      app.machines.delete(id);
      throw new HttpError(422, `could not create machine: ${created.stderr.trim()}`);
    }
    machine.container = new TextDecoder().decode(created.stdout).trim();
    const files = (config.files ?? []) as { guest_path: string; raw_value?: string }[];
    if (files.length > 0) {
      const dir = await Deno.makeTempDir({ prefix: "fakefly-files-" });
      try {
        for (const file of files) {
          const target = `${dir}${file.guest_path}`;
          await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
          const raw = Uint8Array.from(atob(file.raw_value ?? ""), (c) => c.charCodeAt(0));
          await Deno.writeFile(target, raw);
        }
        await dockerOk(["cp", `${dir}/.`, `${machine.container}:/`]);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }
    const start = await docker(["start", machine.container]);
    machine.events.unshift({ type: "launch", status: "created", timestamp: Date.now() });
    if (start.code !== 0) {
      // Fly's init reports a command that cannot start as an exit with a non-zero code.
      this.#stoppedWith(app, machine, 127, false, undefined);
    } else {
      machine.logsDone = this.#collectLogs(app, machine);
      machine.privateIp = await dockerOk([
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        machine.container,
      ]).catch(() => undefined);
      machine.state = "started";
      machine.events.unshift({ type: "start", status: "started", timestamp: Date.now() });
      const watch = this.#watch(app, machine);
      this.#pending.add(watch);
      watch.finally(() => this.#pending.delete(watch));
    }
    return { status: 200, body: this.#machineJson(machine) };
  }

  async #watch(app: FakeApp, machine: FakeMachine): Promise<void> {
    const out = await docker(["wait", machine.container!]);
    if (machine.state === "destroyed") return;
    const code = Number(new TextDecoder().decode(out.stdout).trim());
    const inspect = await docker(["inspect", "-f", "{{.State.OOMKilled}}", machine.container!]);
    const oom = new TextDecoder().decode(inspect.stdout).trim() === "true";
    this.#stoppedWith(app, machine, Number.isFinite(code) ? code : -1, oom, undefined);
  }

  #stoppedWith(
    app: FakeApp,
    machine: FakeMachine,
    code: number,
    oom: boolean,
    signal: number | undefined,
  ): void {
    if (machine.state === "destroyed") return;
    machine.state = "stopped";
    if (machine.logsDone !== undefined) {
      this.#platformLog(app, machine, ` INFO Main child exited normally with code: ${code}`);
      this.#platformLog(app, machine, " INFO Starting clean up.");
    }
    machine.events.unshift(exitEvent(code, oom, signal));
    machine.markStopped?.();
    if (machine.config.auto_destroy === true) {
      const gone = this.#destroy(app, machine);
      this.#pending.add(gone);
      gone.finally(() => this.#pending.delete(gone));
    }
  }

  #destroy(app: FakeApp, machine: FakeMachine): Promise<void> {
    machine.destroying ??= this.#destroyNow(app, machine);
    return machine.destroying;
  }

  async #destroyNow(app: FakeApp, machine: FakeMachine): Promise<void> {
    const forcedWhileRunning = machine.state === "started" || machine.state === "stopping";
    if (forcedWhileRunning) {
      // A forced destroy kills the running machine: flyd records the exit first.
      machine.events.unshift(exitEvent(137, false, 9));
    }
    machine.state = "destroyed";
    machine.events.unshift({ type: "destroy", status: "destroyed", timestamp: Date.now() });
    machine.markStopped?.();
    for (const id of machine.volumes) {
      const volume = app.volumes.get(id);
      if (volume?.attachedTo === machine.id) volume.attachedTo = undefined;
    }
    if (machine.container) {
      if (machine.logsDone !== undefined && !forcedWhileRunning) {
        // Like Fly's log shipping: what a stopped machine printed is kept.
        await Promise.race([machine.logsDone, new Promise((r) => setTimeout(r, 5000))]);
      }
      await docker(["rm", "-f", "-v", machine.container]);
      await machine.logsDone;
    }
  }

  /** Follows a machine's container output into the app's logs, one entry per line. */
  #collectLogs(app: FakeApp, machine: FakeMachine): Promise<void> {
    this.#platformLog(app, machine, " INFO Starting init (commit: fake)...");
    this.#platformLog(app, machine, ` INFO Preparing to run: \`${machine.config.image}\` as root`);
    return this.#followLogs(app, machine);
  }

  /** A line of Fly's init in the app's logs. */
  #platformLog(app: FakeApp, machine: FakeMachine, message: string): void {
    app.logs.push({
      visibleAt: Date.now() + this.logDelayMs,
      id: `${Date.now()}-${app.logs.length}`,
      timestamp: new Date().toISOString(),
      message,
      level: "info",
      instance: machine.id,
      region: machine.region,
    });
  }

  async #followLogs(app: FakeApp, machine: FakeMachine): Promise<void> {
    const child = new Deno.Command("docker", {
      args: ["logs", "--follow", machine.container!],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const follow = async (stream: ReadableStream<Uint8Array>, level: "info" | "error") => {
      let rest = "";
      const push = (message: string) =>
        app.logs.push({
          visibleAt: Date.now() + this.logDelayMs,
          id: `${Date.now()}-${app.logs.length}`,
          timestamp: new Date().toISOString(),
          message,
          level,
          instance: machine.id,
          region: machine.region,
        });
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        const lines = (rest + text).split("\n");
        rest = lines.pop()!;
        for (const line of lines) push(line);
      }
      if (rest !== "") push(rest);
    };
    // Fly ships everything a machine prints at level info, its init's own lines included.
    await Promise.all([follow(child.stdout, "info"), follow(child.stderr, "info"), child.status]);
  }

  /** `GET /api/v1/apps/{app}/logs`: up to 100 lines after `next_token`, of one instance or all. */
  #logs(app: FakeApp, query: URLSearchParams): { status: number; body?: unknown } {
    const token = query.get("next_token") ?? "";
    const start = token === "" ? 0 : Number(token);
    if (!Number.isInteger(start) || start < 0) throw new HttpError(400, "invalid next_token");
    const instance = query.get("instance") ?? "";
    const region = query.get("region") ?? "";
    const page: Record<string, unknown>[] = [];
    let at = start;
    for (; at < app.logs.length && page.length < 100; at++) {
      const line = app.logs[at];
      if (line.visibleAt > Date.now()) break;
      if (instance !== "" && line.instance !== instance) continue;
      if (region !== "" && line.region !== region) continue;
      page.push({
        id: line.id,
        type: "logs",
        attributes: {
          timestamp: line.timestamp,
          message: line.message,
          level: line.level,
          instance: line.instance,
          region: line.region,
          meta: { event: { provider: "app" } },
        },
      });
    }
    return { status: 200, body: { data: page, meta: { next_token: String(at) } } };
  }

  async #wait(
    machine: FakeMachine,
    query: URLSearchParams,
  ): Promise<{ status: number; body?: unknown }> {
    const state = query.get("state") ?? "started";
    if (!MACHINE_STATES.has(state)) throw new HttpError(400, `invalid state "${state}"`);
    const requested = Number(query.get("timeout") ?? "60");
    if (!Number.isInteger(requested) || requested < 1) {
      throw new HttpError(400, "timeout must be a positive number of seconds");
    }
    const timeout = Math.min(requested, this.maxWaitSeconds) * 1000;
    const reached = () =>
      machine.state === state ||
      (state === "stopped" && machine.state === "destroyed");
    const deadline = Date.now() + timeout;
    while (!reached()) {
      if (state === "started" && (machine.state === "stopped" || machine.state === "destroyed")) {
        throw new HttpError(400, `machine is ${machine.state}, it will not become started`);
      }
      if (Date.now() >= deadline) {
        throw new HttpError(408, `deadline_exceeded: machine did not reach ${state} in time`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        machine.stopped,
        new Promise((resolve) => timer = setTimeout(resolve, Math.min(100, deadline - Date.now()))),
      ]);
      clearTimeout(timer);
    }
    return { status: 200, body: { ok: true } };
  }

  #stop(machine: FakeMachine, b: Record<string, unknown>): { status: number; body?: unknown } {
    const signal = b.signal ?? "SIGINT";
    if (signalNumber(signal) === undefined) throw new HttpError(400, `invalid signal "${signal}"`);
    if (machine.state === "stopping") {
      // A second stop (a harsher signal) reaches the running machine at once.
      const again = docker(["kill", "--signal", String(signal).toUpperCase(), machine.container!]);
      this.#pending.add(again);
      again.finally(() => this.#pending.delete(again));
      return { status: 200, body: { ok: true } };
    }
    if (machine.state !== "started") return { status: 200, body: { ok: true } };
    const seconds = typeof b.timeout === "number"
      ? b.timeout
      : typeof b.timeout === "string"
      ? Number.parseFloat(b.timeout)
      : 5;
    machine.state = "stopping";
    const container = machine.container!;
    const work = (async () => {
      await docker(["kill", "--signal", String(signal).toUpperCase(), container]);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = await Promise.race([
        machine.stopped.then(() => false),
        new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), seconds * 1000)),
      ]);
      clearTimeout(timer);
      if (expired) await docker(["kill", "--signal", "SIGKILL", container]);
    })();
    this.#pending.add(work);
    work.finally(() => this.#pending.delete(work));
    return { status: 200, body: { ok: true } };
  }

  async #exec(
    machine: FakeMachine,
    b: Record<string, unknown>,
  ): Promise<{ status: number; body?: unknown }> {
    const cmd = b.command ?? b.cmd;
    const argv = Array.isArray(cmd)
      ? cmd
      : typeof cmd === "string"
      ? cmd.split(" ").filter((s) => s !== "")
      : undefined;
    if (!argv || argv.length === 0 || argv.some((a) => typeof a !== "string")) {
      throw new HttpError(400, "command is required");
    }
    if (machine.state !== "started" && machine.state !== "stopping") {
      throw new HttpError(412, `failed_precondition: machine is ${machine.state}, not started`);
    }
    const out = await docker(["exec", machine.container!, ...argv]);
    if (out.code === 126 || (out.code !== 0 && /OCI runtime exec failed/.test(out.stderr))) {
      throw new HttpError(500, `exec failed: ${out.stderr.trim()}`);
    }
    return {
      status: 200,
      body: {
        exit_code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: out.stderr,
      },
    };
  }

  #machineJson(m: FakeMachine): Record<string, unknown> {
    return {
      id: m.id,
      name: m.name,
      state: m.state,
      region: m.region,
      instance_id: m.id.toUpperCase(),
      private_ip: m.privateIp ?? "",
      config: m.config,
      events: m.events,
      created_at: m.createdAt,
      updated_at: new Date().toISOString(),
    };
  }
}
