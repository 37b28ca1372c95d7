/**
 * A JSON client for a cloud provider's REST API on plain `fetch`: Bearer auth, the provider's
 * error bodies turned into one-line errors (never carrying the token), and rate-limit manners:
 * a 429 waits for `Retry-After` or the `RateLimit-Reset` time (capped) and retries; a 5xx or a
 * network error retries with exponential backoff only when the request is idempotent (GET, PUT,
 * DELETE); a create (POST) whose outcome is unknown throws an {@link ApiError} marked `ambiguous`
 * so the caller looks the name up before trying again, never re-creating blindly. The budget the
 * last response reported (`RateLimit-Remaining` of `RateLimit-Limit`) is kept so pollers can slow
 * down when it runs low.
 *
 * @module
 */

import { sleep } from "../timers.ts";

/** The rate-limit budget as the provider last reported it. */
export interface RateBudget {
  /** Requests per window. */
  readonly limit: number;
  /** Requests left. */
  readonly remaining: number;
  /** When the budget is full again (ms since the epoch). */
  readonly resetAt: number;
}

/** A failed API call. */
export class ApiError extends Error {
  /** HTTP status (0: no response). */
  readonly status: number;
  /** The provider's error code (`not_found`, `unprocessable_entity`, `uniqueness_error` ...). */
  readonly code: string;
  /** True when a non-idempotent request may or may not have been applied. */
  readonly ambiguous: boolean;
  /** Creates the error. */
  constructor(message: string, status: number, code: string, ambiguous = false) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.ambiguous = ambiguous;
  }
}

/** How a client is set up. */
export interface ApiClientOptions {
  /** Provider name for messages (`DigitalOcean`, `Hetzner`). */
  readonly provider: string;
  /** Base URL; request paths are appended. */
  readonly baseUrl: string;
  /** The API token. */
  readonly token: string;
  /** Aborts waits and requests. */
  readonly signal?: AbortSignal;
  /** First backoff after a 5xx (default 1 s; doubles, capped at 30 s). */
  readonly backoffMs?: number;
  /** Longest single wait on a 429 (default 60 s). */
  readonly maxRateWaitMs?: number;
  /** Attempts for one request (default 6). */
  readonly attempts?: number;
  /** Reports a wait (a rate limit hit, a retry), for progress lines. */
  readonly onWait?: (message: string) => void;
}

/** Options of one request. */
export interface RequestOptions {
  /** JSON body. */
  readonly body?: unknown;
  /** Query parameters. */
  readonly query?: Readonly<Record<string, string | number | undefined>>;
  /** Whether the request may be repeated after a 5xx or a network error (default: not POST). */
  readonly idempotent?: boolean;
}

function errorParts(body: unknown): { code: string; message: string } {
  const b = body as Record<string, unknown> | undefined;
  const hetzner = b?.error as Record<string, unknown> | undefined;
  if (hetzner && typeof hetzner === "object") {
    // Any part may be missing or malformed: a uniqueness_error names its fields without messages.
    const details = hetzner.details as { fields?: unknown } | undefined;
    const fields = Array.isArray(details?.fields)
      ? details.fields.map((field: { name?: unknown; messages?: unknown } | null) => {
        const messages = Array.isArray(field?.messages) ? field.messages.map(String) : [];
        return messages.length > 0
          ? `${String(field?.name)}: ${messages.join(", ")}`
          : String(field?.name);
      }).join("; ")
      : undefined;
    return {
      code: String(hetzner.code ?? "error"),
      message: String(hetzner.message ?? "") + (fields ? ` (${fields})` : ""),
    };
  }
  if (b && typeof b.id === "string") return { code: b.id, message: String(b.message ?? "") };
  // Fly Machines: `{"error": "..."}`.
  if (b && typeof b.error === "string") return { code: "error", message: b.error };
  return { code: "error", message: "" };
}

function header(response: Response, name: string): number | undefined {
  const value = response.headers.get(name);
  if (value === null || value.trim() === "") return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** The JSON client. */
export class ApiClient {
  readonly #options: ApiClientOptions;
  #budget: RateBudget | undefined;
  /** Requests sent (every attempt counts), for the benchmark and tests. */
  requests = 0;

  /** Creates a client. */
  constructor(options: ApiClientOptions) {
    this.#options = options;
  }

  /** The provider's name. */
  get provider(): string {
    return this.#options.provider;
  }

  /** The last reported budget, if any. */
  get budget(): RateBudget | undefined {
    return this.#budget;
  }

  /** True when less than a tenth of the window's budget is left: pollers should slow down. */
  get budgetLow(): boolean {
    const b = this.#budget;
    return b !== undefined && b.limit > 0 && b.remaining < b.limit / 10;
  }

  /**
   * Sends a request and returns the parsed JSON body (undefined for an empty one). A 404 throws
   * an {@link ApiError} with status 404 for the caller to judge.
   */
  async request<T = unknown>(
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<T> {
    const idempotent = options.idempotent ?? method !== "POST";
    const attempts = this.#options.attempts ?? 6;
    let backoff = this.#options.backoffMs ?? 1_000;
    const url = new URL(this.#options.baseUrl.replace(/\/+$/, "") + path);
    for (const [k, v] of Object.entries(options.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const what = `${this.provider} API ${method} ${url.pathname}`;
    // Failures (5xx, no answer) and rate-limit waits are counted apart: a 429 storm does not
    // use up the retries a failing server gets, and the reverse.
    let failures = 0;
    let rateWaits = 0;
    for (let attempt = 1;; attempt++) {
      this.#options.signal?.throwIfAborted();
      let response: Response;
      try {
        this.requests++;
        response = await fetch(url, {
          method,
          headers: {
            authorization: `Bearer ${this.#options.token}`,
            accept: "application/json",
            ...(options.body === undefined ? {} : { "content-type": "application/json" }),
          },
          body: options.body === undefined ? undefined : JSON.stringify(options.body),
          signal: this.#options.signal,
        });
      } catch (error) {
        if (this.#options.signal?.aborted) throw error;
        const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
        if (!idempotent) {
          throw new ApiError(
            `${what}: no answer (${reason}); whether it was applied is unknown`,
            0,
            "network",
            true,
          );
        }
        if (++failures >= attempts) {
          throw new ApiError(
            `${what}: no answer after ${attempt} attempts (${reason})`,
            0,
            "network",
          );
        }
        this.#options.onWait?.(
          `${what}: no answer (${reason}); retrying in ${Math.round(backoff / 100) / 10}s`,
        );
        await sleep(backoff, this.#options.signal);
        backoff = Math.min(backoff * 2, 30_000);
        continue;
      }
      this.#noteBudget(response);
      const text = await response.text();
      let body: unknown;
      if (text !== "") {
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
      }
      if (response.ok) return body as T;
      const { code, message } = errorParts(body);
      const detail = `${response.status} ${code}${message ? `: ${message}` : ""}`;
      // A 429 means "not applied, come back later": it is retried more often than a failure.
      if (response.status === 429 && ++rateWaits < attempts * 2) {
        const wait = this.#rateWait(response, backoff);
        this.#options.onWait?.(
          `${this.provider} API rate limit reached; waiting ${Math.ceil(wait / 1000)}s`,
        );
        await sleep(wait, this.#options.signal);
        backoff = Math.min(backoff * 2, 30_000);
        continue;
      }
      if (response.status >= 500) {
        if (!idempotent) {
          throw new ApiError(
            `${what}: ${detail}; whether it was applied is unknown`,
            response.status,
            code,
            true,
          );
        }
        if (++failures < attempts) {
          this.#options.onWait?.(
            `${what}: ${response.status}; retrying in ${Math.round(backoff / 100) / 10}s`,
          );
          await sleep(backoff, this.#options.signal);
          backoff = Math.min(backoff * 2, 30_000);
          continue;
        }
      }
      const hint = response.status === 401
        ? "; check the API token (it is invalid or revoked)"
        : response.status === 403
        ? "; the token lacks a scope this needs (read and write)"
        : response.status === 429
        ? `; the account's API rate limit is exhausted, try again after ${
          new Date(this.#budget?.resetAt ?? Date.now()).toISOString()
        }`
        : "";
      throw new ApiError(`${what} failed: ${detail}${hint}`, response.status, code);
    }
  }

  #noteBudget(response: Response): void {
    const limit = header(response, "ratelimit-limit");
    const remaining = header(response, "ratelimit-remaining");
    const reset = header(response, "ratelimit-reset");
    if (limit === undefined || remaining === undefined) return;
    this.#budget = { limit, remaining, resetAt: reset === undefined ? Date.now() : reset * 1000 };
  }

  #rateWait(response: Response, backoff: number): number {
    const cap = this.#options.maxRateWaitMs ?? 60_000;
    const retryAfter = header(response, "retry-after");
    if (retryAfter !== undefined) return Math.min(cap, Math.max(0, retryAfter * 1000));
    // Without Retry-After: the budget refills gradually (Hetzner: one request per second), so
    // wait with backoff, never past the reset time, never longer than the cap.
    const untilReset = this.#budget ? this.#budget.resetAt - Date.now() : backoff;
    return Math.min(cap, Math.max(0, Math.min(backoff, untilReset)));
  }

  /**
   * The delay a poller should use instead of `base`: ten times longer (capped at 60 s) while the
   * budget is low, so a waiting run does not burn the account's requests.
   */
  pollDelay(base: number): number {
    return this.budgetLow ? Math.max(base, Math.min(base * 10, 60_000)) : base;
  }
}

/** Whether an error is a 404 from the API (a delete of something already gone is a success). */
export function isNotFound(error: unknown): boolean {
  return error instanceof ApiError && error.status === 404;
}
