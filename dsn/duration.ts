/**
 * Durations as the DSN writes them: `10s`, `5m`, `1h30m`, `250ms`, or `0`.
 *
 * @module
 */

import { DsnError } from "./types.ts";

const UNIT_MS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
const PART = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;

/** Whether `text` is a duration `parseDuration` accepts. */
export function isDuration(text: string): boolean {
  return durationMs(text) !== undefined;
}

/**
 * Converts a duration such as `10s`, `5m`, `1h30m`, `1.5h` or `250ms` to milliseconds.
 * `0` (with or without a unit) is zero. Throws `DsnError` for anything else, e.g. a number
 * without a unit.
 */
export function parseDuration(text: string): number {
  const ms = durationMs(text);
  if (ms === undefined) {
    throw new DsnError(
      `invalid duration ${JSON.stringify(text)}: expected a number with a unit (ms, s, m, h), ` +
        `e.g. 10s, 5m or 1h30m`,
    );
  }
  return ms;
}

function durationMs(text: string): number | undefined {
  if (text === "0") return 0;
  if (text === "") return undefined;
  PART.lastIndex = 0;
  let total = 0;
  let position = 0;
  while (position < text.length) {
    PART.lastIndex = position;
    const match = PART.exec(text);
    if (match === null) return undefined;
    total += Number(match[1]) * UNIT_MS[match[2]];
    position = PART.lastIndex;
  }
  return Number.isFinite(total) ? Math.round(total) : undefined;
}

/**
 * Writes milliseconds in the units a person reads them in, at most two of them and in the syntax
 * the CLI's duration flags accept: `1ms`, `850ms`, `2.5s`, `45s`, `1m30s`, `3h`, `2h05m`, `7d`,
 * `8d3h`. The smaller unit is rounded down.
 */
export function describeDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return `${ms}ms`;
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 10_000) return `${Math.floor(ms / 100) / 10}s`;
  const pair = (big: number, bigUnit: string, small: number, smallUnit: string, pad: boolean) => {
    const whole = Math.floor(ms / big);
    const rest = Math.floor((ms % big) / small);
    if (rest === 0) return `${whole}${bigUnit}`;
    return `${whole}${bigUnit}${pad ? String(rest).padStart(2, "0") : rest}${smallUnit}`;
  };
  if (ms < 60_000) return `${Math.floor(ms / 1_000)}s`;
  if (ms < 3_600_000) return pair(60_000, "m", 1_000, "s", true);
  if (ms < 86_400_000) return pair(3_600_000, "h", 60_000, "m", true);
  return pair(86_400_000, "d", 3_600_000, "h", false);
}
