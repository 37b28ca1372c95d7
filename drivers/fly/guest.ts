/**
 * Fly machine sizes: the `size` presets Fly publishes (`shared-cpu-1x` ... `performance-16x`)
 * and a task's limits applied on top (CPU rounded up to a count Fly offers, memory rounded up to
 * Fly's unit: 256 MB for shared CPUs, 1024 MB for performance ones).
 *
 * @module
 */

import { DriverError, type ResourceLimits } from "../contract.ts";

/** A machine's `config.guest`. */
export interface FlyGuest {
  /** `shared` or `performance`. */
  readonly cpu_kind: "shared" | "performance";
  /** Number of CPUs. */
  readonly cpus: number;
  /** Memory in MB. */
  readonly memory_mb: number;
}

const SHARED_COUNTS = [1, 2, 4, 6, 8];
const PERFORMANCE_COUNTS = [1, 2, 4, 8, 16];

/** Every preset name with its guest (Fly's published sizes, CPU-only ones). */
export const FLY_PRESETS: Readonly<Record<string, FlyGuest>> = Object.freeze(Object.fromEntries([
  ...SHARED_COUNTS.map((n) => [
    `shared-cpu-${n}x`,
    { cpu_kind: "shared", cpus: n, memory_mb: n * 256 } as FlyGuest,
  ]),
  ...PERFORMANCE_COUNTS.map((n) => [
    `performance-${n}x`,
    { cpu_kind: "performance", cpus: n, memory_mb: n * 2048 } as FlyGuest,
  ]),
]));

/** The preset's guest; an unknown name is an `invalid` error listing the known ones. */
export function presetGuest(size: string): FlyGuest {
  const guest = FLY_PRESETS[size];
  if (guest === undefined) {
    throw new DriverError(
      "invalid",
      `unknown Fly size "${size}"; use one of ${Object.keys(FLY_PRESETS).join(", ")}`,
    );
  }
  return guest;
}

const MIB = 1024 * 1024;

/** The guest for a task: the preset, with the task's CPU and memory limits overriding it. */
export function guestFor(size: string, limits: ResourceLimits | undefined): FlyGuest {
  const preset = presetGuest(size);
  let cpus = preset.cpus;
  let memory = preset.memory_mb;
  const counts = preset.cpu_kind === "shared" ? SHARED_COUNTS : PERFORMANCE_COUNTS;
  if (limits?.cpu !== undefined && limits.cpu > 0) {
    const wanted = counts.find((n) => n >= limits.cpu!);
    if (wanted === undefined) {
      throw new DriverError(
        "invalid",
        `a ${preset.cpu_kind} Fly machine has at most ${
          counts.at(-1)
        } CPUs, the task asks for ${limits.cpu}; lower the task's cpu limit`,
      );
    }
    cpus = wanted;
  }
  if (limits?.memoryBytes !== undefined && limits.memoryBytes > 0) {
    const unit = preset.cpu_kind === "shared" ? 256 : 1024;
    memory = Math.max(256, Math.ceil(limits.memoryBytes / MIB / unit) * unit);
  }
  return { cpu_kind: preset.cpu_kind, cpus, memory_mb: memory };
}
