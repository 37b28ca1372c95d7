/**
 * Kubernetes resource quantities (`500m`, `2`, `512Mi`, `1G`, `1e3`) as numbers.
 *
 * @module
 */

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
  Pi: 1024 ** 5,
  Ei: 1024 ** 6,
};

/** The value of a quantity, or `undefined` when it does not parse. */
export function parseQuantity(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value !== "string") return undefined;
  const m = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$/.exec(value.trim());
  if (!m || !(m[2] in SUFFIX)) return undefined;
  const n = Number(m[1]);
  return Number.isFinite(n) ? n * SUFFIX[m[2]] : undefined;
}
