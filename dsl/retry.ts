/**
 * `.retry(n, options)`: the retry policy of a task or sandbox call, its rules (checked
 * by the DSL and again by the runner) and the delay before each further attempt.
 *
 * @module
 */

import { parseDurationMs } from "./parse.ts";

/** A kind of unsuccessful attempt that may be retried (a cancelled one never is). */
export type RetryCondition = "failure" | "timeout" | "error";

/** Options of `.retry(n, options)`. */
export interface RetryOptions {
  /**
   * Which endings are retried: `"failure"` (non-zero exit), `"timeout"` (the task's
   * `.timeout()` stopped the attempt), `"error"` (the driver could not run it, such as a
   * failed image pull). Default: all three, like GitLab's `retry:when: always`.
   */
  readonly when?: readonly RetryCondition[];
  /** The wait before the second attempt (`"2s"`, or milliseconds; default none). */
  readonly delay?: number | string;
  /** Each later wait is the previous one times this (1 to 10; default 1: a constant delay). */
  readonly backoff?: number;
}

/** A checked retry policy, as it crosses to the runner. */
export interface RetryPolicy {
  /** Retries after the first attempt (0 to {@link MAX_RETRIES}). */
  readonly max: number;
  /** Endings that are retried. */
  readonly when: readonly RetryCondition[];
  /** The wait before the second attempt, in milliseconds. */
  readonly delayMs: number;
  /** The factor between successive waits. */
  readonly backoff: number;
}

/** The most retries a task may ask for (11 attempts in all). */
export const MAX_RETRIES = 10;

/** The longest wait between two attempts, however large the backoff makes it: one hour. */
export const MAX_RETRY_DELAY_MS = 3_600_000;

/** The largest backoff factor. */
export const MAX_BACKOFF = 10;

/** Every retry condition, the default of `when`. */
export const RETRY_CONDITIONS: readonly RetryCondition[] = Object.freeze([
  "failure",
  "timeout",
  "error",
]);

const USAGE = 'such as .retry(2, { when: ["failure"], delay: "2s", backoff: 2 })';

function checkCount(n: unknown): number {
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > MAX_RETRIES) {
    throw new Error(
      `retry() needs a whole number of retries from 0 to ${MAX_RETRIES}, not ${
        typeof n === "string" ? JSON.stringify(n) : String(n)
      }; ${USAGE}`,
    );
  }
  return n;
}

function checkWhen(when: unknown): RetryCondition[] {
  if (
    !Array.isArray(when) || when.length === 0 ||
    !when.every((item) => (RETRY_CONDITIONS as readonly unknown[]).includes(item))
  ) {
    throw new Error(
      `retry() option "when" must be a non-empty list of "failure", "timeout", "error", not ${
        JSON.stringify(when) ?? String(when)
      }`,
    );
  }
  return RETRY_CONDITIONS.filter((condition) => when.includes(condition));
}

function checkDelay(delay: unknown): number {
  if (delay === 0) return 0;
  if (typeof delay !== "number" && typeof delay !== "string") {
    throw new Error(`retry() option "delay" must be a duration such as "2s", not ${String(delay)}`);
  }
  let ms: number;
  try {
    ms = parseDurationMs(delay);
  } catch (error) {
    throw new Error(`retry() option "delay": ${(error as Error).message}`);
  }
  if (ms > MAX_RETRY_DELAY_MS) {
    throw new Error(`retry() option "delay" must be at most 1h, not ${JSON.stringify(delay)}`);
  }
  return ms;
}

function checkBackoff(backoff: unknown): number {
  if (
    typeof backoff !== "number" || !Number.isFinite(backoff) || backoff < 1 ||
    backoff > MAX_BACKOFF
  ) {
    throw new Error(
      `retry() option "backoff" must be a number from 1 (a constant delay) to ${MAX_BACKOFF}, not ${
        String(backoff)
      }`,
    );
  }
  return backoff;
}

/** Checks `.retry(n, options)`'s arguments; throws a one-line error naming what is wrong. */
export function checkRetry(n: unknown, options: unknown = {}): RetryPolicy {
  const max = checkCount(n);
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new Error(`retry() options must be an object, ${USAGE}`);
  }
  const given = options as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (key !== "when" && key !== "delay" && key !== "backoff") {
      throw new Error(`retry() has no option "${key}"; use when, delay or backoff`);
    }
  }
  return Object.freeze({
    max,
    when: Object.freeze(given.when === undefined ? [...RETRY_CONDITIONS] : checkWhen(given.when)),
    delayMs: given.delay === undefined ? 0 : checkDelay(given.delay),
    backoff: given.backoff === undefined ? 1 : checkBackoff(given.backoff),
  });
}

/** Checks a policy as the runner receives it (pipeline code may send anything). */
export function checkRetryPolicy(value: unknown): RetryPolicy {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error("invalid retry policy: pipeline code must use .retry()");
  }
  const policy = value as Record<string, unknown>;
  const delayMs = policy.delayMs;
  if (
    typeof delayMs !== "number" || !Number.isFinite(delayMs) || delayMs < 0 ||
    delayMs > MAX_RETRY_DELAY_MS
  ) {
    throw new Error('retry() option "delay" must be a duration from 0 to 1h, such as "2s"');
  }
  return Object.freeze({
    max: checkCount(policy.max),
    when: Object.freeze(checkWhen(policy.when)),
    delayMs,
    backoff: checkBackoff(policy.backoff),
  });
}

/**
 * The wait before attempt `attempt + 1` (attempts count from 1): the delay times the
 * backoff to the power `attempt - 1`, at most {@link MAX_RETRY_DELAY_MS}.
 */
export function retryDelayMs(policy: RetryPolicy, attempt: number): number {
  return Math.min(MAX_RETRY_DELAY_MS, Math.round(policy.delayMs * policy.backoff ** (attempt - 1)));
}
