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
