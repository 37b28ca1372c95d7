/**
 * The runner's side of `.retry()`: which attempt a task is on, whether an ended attempt
 * is followed by another (and after what wait), and the loop that runs the attempts.
 * Each attempt is a whole run of the task under the session's rules (a slot, its own
 * timeout, masking, cancellation); the wait between attempts holds no slot and ends at
 * once when the run is cancelled, so the next attempt is then cancelled before it starts.
 *
 * @module
 */

import { sleep } from "../drivers/timers.ts";
import { retryDelayMs, type RetryPolicy } from "../dsl/retry.ts";
import type { TaskResult, TaskStatus } from "../dsl/types.ts";

/** The attempts of one task or sandbox call. */
export class Attempts {
  /** The policy, when the task has `.retry()`. */
  readonly policy: RetryPolicy | undefined;
  /** The current attempt's number, from 1. */
  attempt = 1;
  /** Set when an attempt ended and another follows: the wait before it. */
  nextDelayMs: number | undefined;

  /** Attempts under `policy` (none: a single attempt). */
  constructor(policy?: RetryPolicy) {
    this.policy = policy;
  }

  /** `attempt` and `maxAttempts` for the task's events, present only with a policy. */
  get eventFields(): { attempt?: number; maxAttempts?: number } {
    return this.policy === undefined
      ? {}
      : { attempt: this.attempt, maxAttempts: this.policy.max + 1 };
  }

  /**
   * Records how the current attempt ended and returns the wait before the next one, or
   * undefined when none follows: no policy, no retry left, an ending outside `when`, a
   * cancelled run, or an attempt that never started (a refused request is not retried).
   */
  decide(status: TaskStatus, started: boolean, cancelled: boolean): number | undefined {
    const policy = this.policy;
    this.nextDelayMs = undefined;
    if (policy === undefined || !started || cancelled || this.attempt > policy.max) return;
    if (status === "success" || status === "cancelled" || !policy.when.includes(status)) return;
    this.nextDelayMs = retryDelayMs(policy, this.attempt);
    return this.nextDelayMs;
  }
}

/**
 * Runs `attempt` until one is not followed by another (see {@link Attempts.decide}),
 * waiting the decided delay between them; `signal` cuts a wait short, and the next
 * attempt then sees the cancelled run.
 */
export async function runAttempts(
  attempts: Attempts,
  signal: AbortSignal,
  attempt: () => Promise<TaskResult>,
): Promise<TaskResult> {
  for (;;) {
    const result = await attempt();
    const delay = attempts.nextDelayMs;
    if (delay === undefined) return result;
    attempts.nextDelayMs = undefined;
    await sleep(delay, signal);
    attempts.attempt++;
  }
}

/** `1 of 3` style text for an attempt. */
export function attemptText(attempt: number, maxAttempts: number): string {
  return `attempt ${attempt} of ${maxAttempts}`;
}
