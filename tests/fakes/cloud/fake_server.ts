/**
 * What the DigitalOcean and Hetzner fakes share: an HTTP server on 127.0.0.1, a request log,
 * a rate-limit budget reported in headers, injected failures (429 storms, 5xx), and the machines
 * that boot (sshd on a loopback address) a short while after they are created.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { generateEd25519KeyPair } from "../../../drivers/ssh/keygen.ts";
import { bootMachine, type FakeMachine, freeLoopbackAddress } from "./machine_host.ts";

/** One request the fake received. */
export interface LoggedRequest {
  /** HTTP method. */
  readonly method: string;
  /** Path, without the query. */
  readonly path: string;
  /** Query parameters. */
  readonly query: URLSearchParams;
  /** The status the fake answered with. */
  status: number;
}

/** A failure to inject: the next `times` requests matching `method` and `path` get `status`. */
export interface Fault {
  /** Only this method (default any). */
  readonly method?: string;
  /** Only paths matching this (default any). */
  readonly path?: RegExp;
  /** The status to answer with (429 or 5xx). */
  readonly status: number;
  /** How many matching requests fail. */
  times: number;
  /** 429: the `Retry-After` header in seconds (default: none; the reset header still says when). */
  readonly retryAfterSeconds?: number;
  /** Apply the request anyway and only fail the response (a create whose answer is lost). */
  readonly afterApplying?: boolean;
}

/** Knobs every fake has. */
export interface FakeOptions {
  /** The token the fake accepts (default `test-token`). */
  readonly token?: string;
  /** How long a new machine stays `new`/`initializing` before it runs (default 150 ms). */
  readonly activationDelayMs?: number;
  /** Requests allowed per window before 429 (default 5000). */
  readonly rateLimit?: number;
}

/** A machine's boot state inside a fake. */
export interface MachineSlot {
  /** Loopback address. */
  readonly ip: string;
  /** Set once booted. */
  machine?: FakeMachine;
  /** Pending activation. */
  timer?: ReturnType<typeof setTimeout>;
  /** Resolves once the machine has booted or failed to. */
  booting?: Promise<void>;
  /** Why booting failed. */
  error?: string;
}

/** The fake's reply to a request: a status and a JSON body (undefined: empty). */
export interface Reply {
  /** HTTP status. */
  readonly status: number;
  /** JSON body. */
  readonly body?: unknown;
  /** Extra headers. */
  readonly headers?: Record<string, string>;
}

/** The base of both fakes. */
export abstract class FakeCloud {
  /** Every request, in order. */
  readonly requests: LoggedRequest[] = [];
  /** Injected failures. */
  readonly faults: Fault[] = [];
  /** The accepted token. */
  readonly token: string;
  /** Delay before a created machine runs. */
  activationDelayMs: number;
  /** When true, new machines run (status) but their sshd never starts. */
  unreachable = false;
  /** When true, new machines boot with a host key of their own instead of the user_data's (an impostor). */
  impostor = false;
  /** Requests per window. */
  rateLimit: number;
  /** Requests left in the window. */
  remaining: number;
  /** When the window resets (ms since the epoch). */
  resetAt: number;
  /** Called for every request before it is handled (tests use it to act mid-provisioning). */
  onRequest?: (request: LoggedRequest) => void | Promise<void>;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #slots = new Set<MachineSlot>();
  #nextId = 1000;

  /** Starts the server. */
  constructor(options: FakeOptions = {}) {
    this.token = options.token ?? "test-token";
    this.activationDelayMs = options.activationDelayMs ?? 150;
    this.rateLimit = options.rateLimit ?? 5000;
    this.remaining = this.rateLimit;
    this.resetAt = Date.now() + 3_600_000;
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => this.#serve(request),
    );
  }

  /** The API base URL (what `DIGITALOCEAN_API_URL` / `HETZNER_API_URL` take). */
  abstract get url(): string;

  /** `http://127.0.0.1:PORT`. */
  protected get origin(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** A fresh numeric ID. */
  protected nextId(): number {
    return this.#nextId++;
  }

  /** Requests matching a method and a path pattern. */
  count(method: string, path: RegExp): number {
    return this.requests.filter((r) => r.method === method && path.test(r.path)).length;
  }

  /** The provider's error body for a status and code. */
  protected abstract errorBody(status: number, code: string, message: string): unknown;

  /** Headers carrying the rate-limit budget, in the provider's spelling. */
  protected abstract rateHeaders(): Record<string, string>;

  /** Handles one authenticated request. */
  protected abstract handle(
    method: string,
    path: string,
    query: URLSearchParams,
    body: unknown,
  ): Promise<Reply> | Reply;

  /** Whether the path is under the API's prefix. */
  protected abstract prefix: string;

  async #serve(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const logged: LoggedRequest = {
      method: request.method,
      path: url.pathname.slice(this.prefix.length),
      query: url.searchParams,
      status: 0,
    };
    this.requests.push(logged);
    const reply = await this.#reply(request, logged);
    logged.status = reply.status;
    const headers = new Headers({ ...this.rateHeaders(), ...reply.headers });
    if (reply.body === undefined) return new Response(null, { status: reply.status, headers });
    headers.set("content-type", "application/json");
    return new Response(JSON.stringify(reply.body), { status: reply.status, headers });
  }

  async #reply(request: Request, logged: LoggedRequest): Promise<Reply> {
    await this.onRequest?.(logged);
    if (!url_under(logged.path, request.url, this.prefix)) {
      return { status: 404, body: this.errorBody(404, "not_found", "no such route") };
    }
    if (request.headers.get("authorization") !== `Bearer ${this.token}`) {
      return {
        status: 401,
        body: this.errorBody(401, "unauthorized", "Unable to authenticate you"),
      };
    }
    if (Date.now() >= this.resetAt) {
      this.remaining = this.rateLimit;
      this.resetAt = Date.now() + 3_600_000;
    }
    if (this.remaining <= 0) {
      return {
        status: 429,
        body: this.errorBody(429, "too_many_requests", "API Rate limit exceeded."),
      };
    }
    this.remaining--;
    const fault = this.faults.find((f) =>
      f.times > 0 && (f.method === undefined || f.method === logged.method) &&
      (f.path === undefined || f.path.test(logged.path))
    );
    let body: unknown;
    const text = await request.text();
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        return { status: 400, body: this.errorBody(400, "bad_request", "invalid JSON body") };
      }
    }
    if (fault && !fault.afterApplying) return this.#fail(fault);
    const reply = await this.handle(logged.method, logged.path, logged.query, body);
    if (fault) return this.#fail(fault);
    return reply;
  }

  #fail(fault: Fault): Reply {
    fault.times--;
    if (fault.status === 429) {
      return {
        status: 429,
        body: this.errorBody(429, "too_many_requests", "API Rate limit exceeded."),
        headers: fault.retryAfterSeconds === undefined
          ? {}
          : { "retry-after": String(fault.retryAfterSeconds) },
      };
    }
    return {
      status: fault.status,
      body: this.errorBody(fault.status, "server_error", "Server Error"),
    };
  }

  /**
   * Schedules a machine: after the activation delay `onActive` runs (status becomes running) and
   * sshd starts unless the fake is set `unreachable`.
   */
  protected scheduleMachine(
    boot: { userData?: string; keys: readonly string[] },
    onActive: () => void,
  ): MachineSlot {
    const slot: MachineSlot = { ip: freeLoopbackAddress() };
    const unreachable = this.unreachable;
    const userData = this.impostor ? impostorUserData() : boot.userData;
    slot.booting = new Promise<void>((resolve) => {
      slot.timer = setTimeout(async () => {
        slot.timer = undefined;
        if (!unreachable) {
          try {
            slot.machine = await bootMachine(slot.ip, {
              userData,
              authorizedKeys: boot.keys,
            });
          } catch (error) {
            slot.error = error instanceof Error ? error.message : String(error);
          }
        }
        onActive();
        resolve();
      }, this.activationDelayMs);
    });
    this.#slots.add(slot);
    return slot;
  }

  /** Stops a machine's sshd (the machine was deleted). */
  protected async destroySlot(slot: MachineSlot): Promise<void> {
    if (slot.timer !== undefined) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
    } else {
      await slot.booting;
    }
    await slot.machine?.stop();
    this.#slots.delete(slot);
  }

  /** How many machines still have an sshd or a pending boot. */
  get liveMachineProcesses(): number {
    return this.#slots.size;
  }

  /** Stops every machine and the server. */
  async close(): Promise<void> {
    for (const slot of [...this.#slots]) await this.destroySlot(slot);
    await this.#server.shutdown();
  }
}

function url_under(_path: string, url: string, prefix: string): boolean {
  return new URL(url).pathname.startsWith(prefix);
}

function impostorUserData(): string {
  const pair = generateEd25519KeyPair("impostor");
  return `#cloud-config\n${JSON.stringify({ ssh_keys: { ed25519_private: pair.privateKey } })}`;
}

/** Pages a list: `page` (1-based) and `per_page` from the query, with a default and a cap. */
export function paginate<T>(
  items: readonly T[],
  query: URLSearchParams,
  defaultPerPage: number,
  maxPerPage: number,
): { page: number; perPage: number; lastPage: number; items: T[] } {
  const perPage = Math.min(
    maxPerPage,
    Math.max(1, Number(query.get("per_page") ?? defaultPerPage) || defaultPerPage),
  );
  const page = Math.max(1, Number(query.get("page") ?? 1) || 1);
  const lastPage = Math.max(1, Math.ceil(items.length / perPage));
  return { page, perPage, lastPage, items: items.slice((page - 1) * perPage, page * perPage) };
}

/** The MD5 fingerprint both providers show for a public key (`aa:bb:...`), from its base64 blob. */
export function md5Fingerprint(blob: string): string {
  const digest = createHash("md5").update(Uint8Array.from(atob(blob), (c) => c.charCodeAt(0)))
    .digest("hex");
  return digest.match(/../g)!.join(":");
}
