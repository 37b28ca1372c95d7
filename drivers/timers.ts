/**
 * Timers for durations users choose (`--timeout`, `--grace`, `.timeout()`, DSN durations).
 * `setTimeout` holds at most 2^31-1 ms (about 24.8 days) and fires at once for anything longer,
 * so `--timeout=597h` would stop a run immediately; these helpers chain timers instead.
 *
 * @module
 */

/** The longest delay one `setTimeout` honours: 2^31-1 ms, about 24.8 days. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A pending {@link longTimeout}. */
export interface LongTimeout {
  /** Cancels the timer; the callback is not called. Safe to call more than once. */
  clear(): void;
}

/**
 * Calls `callback` once after `ms` milliseconds, however long that is (longer delays are chained
 * through several timers). `Infinity` never fires; a negative or NaN delay fires on the next turn.
 */
export function longTimeout(callback: () => void, ms: number): LongTimeout {
  let remaining = Number.isNaN(ms) ? 0 : Math.max(0, ms);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let cleared = false;
  const arm = () => {
    if (cleared || remaining === Infinity) return;
    const step = Math.min(remaining, MAX_TIMER_MS);
    timer = setTimeout(() => {
      remaining -= step;
      if (remaining > 0) arm();
      else callback();
    }, step);
  };
  arm();
  return {
    clear: () => {
      cleared = true;
      clearTimeout(timer);
    },
  };
}

/** Resolves after `ms` milliseconds (any length), or as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      timer.clear();
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = longTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
