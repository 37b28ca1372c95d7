/**
 * HTTPS to the API server with the credentials of the kubeconfig (client certificates, tokens,
 * token files, exec credential plugins: resolved by `@kubernetes/client-node`), over one
 * keep-alive agent. Answers over 399 become {@link KubeApiError}s carrying the `Status` body's
 * reason and message. Streams (logs, watches) are returned as they come.
 *
 * @module
 */

import https from "node:https";
import type { IncomingMessage } from "node:http";
import type { KubeConfig } from "@kubernetes/client-node";
import { Buffer } from "node:buffer";

/** An error answer of the API server. */
export class KubeApiError extends Error {
  /** HTTP status. */
  readonly status: number;
  /** The Status body's `reason` (`NotFound`, `AlreadyExists`, `BadRequest`, ...). */
  readonly reason: string;
  /** Creates the error. */
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.name = "KubeApiError";
    this.status = status;
    this.reason = reason;
  }
}

/** The HTTP status of a {@link KubeApiError}, else `undefined`. */
export function statusOf(error: unknown): number | undefined {
  return error instanceof KubeApiError ? error.status : undefined;
}

/** Options of one request. */
export interface RequestOptions {
  /** Query parameters (arrays repeat the key). */
  readonly query?: Record<string, string | number | boolean | readonly string[] | undefined>;
  /** A JSON body. */
  readonly body?: unknown;
  /** Content type of the body (default application/json). */
  readonly contentType?: string;
  /** Aborts the request (and the response stream). */
  readonly signal?: AbortSignal;
}

interface Prepared {
  readonly agent: https.Agent;
  readonly headers: Record<string, string>;
  readonly at: number;
}

/** A client for one API server. */
export class KubeHttp {
  readonly #kc: KubeConfig;
  readonly #server: URL;
  #prepared?: Promise<Prepared>;

  /** Binds to the kubeconfig's current context. */
  constructor(kc: KubeConfig, server: string) {
    this.#kc = kc;
    this.#server = new URL(server);
  }

  async #prepare(): Promise<Prepared> {
    const cached = this.#prepared && await this.#prepared.catch(() => undefined);
    // Tokens from exec plugins and token files can rotate: re-read them every minute.
    if (cached && Date.now() - cached.at < 60_000) return cached;
    this.#prepared = (async () => {
      // deno-lint-ignore no-explicit-any
      const opts: any = { headers: {} };
      await this.#kc.applyToHTTPSOptions(opts);
      const agent = new https.Agent({
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        rejectUnauthorized: opts.rejectUnauthorized !== false,
        servername: opts.servername,
        keepAlive: true,
        maxSockets: 16,
      });
      cached?.agent.destroy();
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k] = String(v);
      if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString("base64")}`;
      return { agent, headers, at: Date.now() };
    })();
    return await this.#prepared;
  }

  /** Sends a request; resolves with the response (status < 400) or rejects with the error. */
  async request(
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<IncomingMessage> {
    const { agent, headers } = await this.#prepare();
    const url = new URL(path, this.#server);
    url.pathname = `${this.#server.pathname.replace(/\/$/, "")}${path}`;
    for (const [k, v] of Object.entries(options.query ?? {})) {
      if (v === undefined) continue;
      if (Array.isArray(v)) { for (const item of v) url.searchParams.append(k, item); }
      else url.searchParams.set(k, String(v));
    }
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = https.request(url, {
        method,
        agent,
        headers: {
          ...headers,
          Accept: "application/json",
          ...(body === undefined ? {} : {
            "Content-Type": options.contentType ?? "application/json",
            "Content-Length": String(Buffer.byteLength(body)),
          }),
        },
        signal: options.signal,
      }, resolve);
      req.on("error", reject);
      req.end(body);
    }).catch((error) => {
      if (options.signal?.aborted) throw error;
      throw new KubeApiError(
        0,
        "Unreachable",
        `cannot reach the Kubernetes API at ${this.#server.origin}: ${(error as Error).message}`,
      );
    });
    if ((res.statusCode ?? 500) < 400) return res;
    const text = await readAll(res);
    let reason = "Unknown";
    let message = text.trim() || `HTTP ${res.statusCode}`;
    try {
      const status = JSON.parse(text) as { reason?: string; message?: string };
      reason = status.reason ?? reason;
      message = status.message ?? message;
    } catch { /* not a Status */ }
    throw new KubeApiError(res.statusCode ?? 500, reason, message.split("\n")[0]);
  }

  /** Sends a request and parses the JSON answer. */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, options);
    return JSON.parse(await readAll(res)) as T;
  }

  /** Releases the keep-alive connections. */
  async close(): Promise<void> {
    const prepared = await this.#prepared?.catch(() => undefined);
    prepared?.agent.destroy();
  }
}

/** Reads a whole response as text. */
export function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    res.on("data", (c: Uint8Array) => chunks.push(c));
    res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    res.on("error", reject);
    res.on("aborted", () => reject(new Error("response aborted")));
  });
}
