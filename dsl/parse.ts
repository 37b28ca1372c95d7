/**
 * Small parsers for what authors write by hand: durations (`"2s"`, `"1m30s"`) and
 * memory quantities (`"512Mi"`, `"1Gi"`, `"512M"`, `"512MB"`).
 *
 * @module
 */

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses a duration: a number of milliseconds, or text such as `"500ms"`, `"2s"`,
 * `"1m30s"`, `"1.5h"`. Throws a one-line error on anything else.
 */
export function parseDurationMs(value: number | string): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value <= 0) {
      throw new Error(`invalid duration ${value}: use a positive number of milliseconds`);
    }
    return value;
  }
  const text = value.trim();
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let total = 0;
  let index = 0;
  while (index < text.length) {
    part.lastIndex = index;
    const match = part.exec(text);
    if (match === null) {
      throw new Error(
        `invalid duration "${value}": use a number with a unit, such as "500ms", "2s", "1m30s"`,
      );
    }
    total += Number(match[1]) * DURATION_UNITS[match[2]];
    index = part.lastIndex;
  }
  if (text.length === 0 || total <= 0) {
    throw new Error(`invalid duration "${value}": it must be positive, such as "2s"`);
  }
  return total;
}

const MEMORY_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  ki: 1024,
  kib: 1024,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
  ti: 1024 ** 4,
  tib: 1024 ** 4,
};

/** Parses a memory amount in bytes, or a quantity such as `"512Mi"` (binary) or `"512MB"` (decimal). */
export function parseMemoryBytes(value: number | string): number {
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value <= 0) {
      throw new Error(`invalid memory ${value}: use a positive whole number of bytes`);
    }
    return value;
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = match ? MEMORY_UNITS[match[2].toLowerCase()] : undefined;
  if (match === null || unit === undefined) {
    throw new Error(
      `invalid memory "${value}": use bytes or a quantity such as "512Mi", "1Gi", "512M" or "512MB"`,
    );
  }
  const bytes = Math.round(Number(match[1]) * unit);
  if (bytes <= 0) throw new Error(`invalid memory "${value}": it must be positive`);
  return bytes;
}
