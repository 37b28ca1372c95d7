/**
 * The automatic gc after a run: at most once a day per state directory (a timestamp file,
 * `auto-gc.stamp`), a cheap pass over the caches (`--cache-ttl` 7d) of the run's driver and
 * namespace and over run logs (`--log-ttl` 7d, `--keep-logs` 50), bounded in time, never
 * touching a live run's caches or logs. What dead runs left behind waits for `pocketci gc`.
 * `POCKETCI_NO_AUTO_GC=1` turns it off (checked by `pocketci run`).
 *
 * @module
 */

import type { DriverFactory } from "../drivers/contract.ts";
import type { ResolvedDsn } from "../dsn/types.ts";

/** The environment variable that turns the automatic gc off. */
export const NO_AUTO_GC_ENV = "POCKETCI_NO_AUTO_GC";

/** How often the automatic gc runs at most. */
export const AUTO_GC_INTERVAL_MS = 24 * 3_600_000;

/** How long it may take; removals stop at this limit. */
export const AUTO_GC_BUDGET_MS = 10_000;

const DAY_MS = 24 * 3_600_000;

/** Whether the environment turns the automatic gc off (any value but empty or `0`). */
export function autoGcDisabled(env: Readonly<Record<string, string | undefined>>): boolean {
  const value = env[NO_AUTO_GC_ENV];
  return value !== undefined && value !== "" && value !== "0";
}

/** What {@link autoGc} needs. */
export interface AutoGcOptions {
  /** The state directory (holds the timestamp file). */
  readonly stateDir: string;
  /** The run's driver configuration and namespace. */
  readonly dsn: ResolvedDsn;
  /** The run's driver factory. */
  readonly factory: DriverFactory;
  /** The current time (for tests). */
  readonly now?: Date;
  /** Receives the one line it logs, when it removed something or hit a problem. */
  readonly log: (level: "info" | "warn", message: string) => void;
}

/**
 * Runs the automatic gc when the last one is a day old or more (or never ran); resolves
 * with whether it ran. Never throws: a failure is a warning line.
 */
export async function autoGc(options: AutoGcOptions): Promise<boolean> {
  const now = options.now ?? new Date();
  const stamp = `${options.stateDir}/auto-gc.stamp`;
  try {
    const last = Date.parse((await Deno.readTextFile(stamp).catch(() => "")).trim());
    if (
      !Number.isNaN(last) && now.getTime() - last < AUTO_GC_INTERVAL_MS && last <= now.getTime()
    ) {
      return false;
    }
    // Stamped first: runs ending together do not all collect.
    await Deno.writeTextFile(stamp, now.toISOString() + "\n");
    const factory = options.factory;
    const { collectGarbage } = await import("./gc.ts");
    const report = await collectGarbage({
      stateDir: options.stateDir,
      dsn: options.dsn,
      namespace: options.dsn.namespace,
      defaultDsn: () => options.dsn,
      factory: () => Promise.resolve(factory),
      cacheTtlMs: 7 * DAY_MS,
      logs: { ttlMs: 7 * DAY_MS, keep: 50 },
      cachesAndLogsOnly: true,
      deadline: Date.now() + AUTO_GC_BUDGET_MS,
      dryRun: false,
      now,
    });
    const removed = report.actions.filter((action) => action.action === "removed");
    const caches = removed.filter((action) => action.resource.kind === "cache").length;
    const logs = removed.length - caches;
    const failed = report.actions.length - removed.length;
    const trouble = [...report.problems, ...(failed ? [`${failed} could not be removed`] : [])];
    if (removed.length > 0 || trouble.length > 0) {
      options.log(
        trouble.length > 0 ? "warn" : "info",
        `automatic gc (at most daily; ${NO_AUTO_GC_ENV}=1 turns it off): removed ${caches} cache(s) unused for 7d and ${logs} old run log(s)${
          trouble.length > 0 ? `; ${trouble.join("; ")}` : ""
        }`,
      );
    }
    return true;
  } catch (error) {
    options.log(
      "warn",
      `automatic gc failed: ${
        (error instanceof Error ? error.message : String(error)).split("\n")[0]
      }`,
    );
    return true;
  }
}
