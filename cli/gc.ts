/**
 * `pocketci gc`: removes what dead runs left behind, caches unused for longer
 * than `--cache-ttl` and old run logs; never a live run's resources or logs.
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import { driverFlag, durationFlag, stateDirFlag, walkFlags, writeOut as write } from "./flags.ts";

/** The help text of `pocketci gc`. */
export const GC_HELP =
  `Usage: pocketci gc [--driver=DSN] [--dry-run] [--cache-ttl=7d] [--cache-max=SIZE]
                  [--log-ttl=7d] [--keep-logs=50] [--json] [--state-dir DIR]

Removes processes, directories and driver resources (containers, volumes, machines ...)
that runs which no longer exist left behind (recorded in their journals, or labelled
with their run), caches unused for longer than --cache-ttl (default 7d) and, with
--cache-max, the least recently used caches until the rest fit in SIZE, and run logs
last written to longer ago than --log-ttl or beyond the newest --keep-logs runs of
their namespace. Resources and logs of live runs are never touched.

  --driver DSN       only this driver (needed for drivers whose defaults cannot reach them)
  --dry-run          print what would be removed, remove nothing
  --cache-ttl D      remove caches unused for longer than D (e.g. 12h, 7d)
  --cache-max SIZE   then remove the least recently used caches (never a live run's) until
                     all seen hold at most SIZE (e.g. 10GB, 500MB, 2Gi)
  --log-ttl D        remove run logs last written to longer ago than D (default 7d)
  --keep-logs N      keep the logs of at most N runs per namespace (default 50)
  --json             one JSON object per line
  --state-dir DIR    state directory (default: $POCKETCI_STATE_DIR, $XDG_STATE_HOME/pocketci
                     or ~/.local/state/pocketci)

Exit codes: 0 done, 1 something could not be removed, 2 bad flags.`;

interface GcFlags {
  driver?: string;
  dryRun: boolean;
  cacheTtl: string;
  cacheMax?: string;
  logTtl: string;
  keepLogs: string;
  json: boolean;
  stateDir?: string;
  help: boolean;
}

/** Parses the flags of `pocketci gc`. */
export function parseGcFlags(argv: readonly string[]): GcFlags {
  const flags: GcFlags = {
    dryRun: false,
    cacheTtl: "7d",
    logTtl: "7d",
    keepLogs: "50",
    json: false,
    help: false,
  };
  walkFlags(argv, ({ arg, name, value }) => {
    switch (name) {
      case "-h":
      case "--help":
        flags.help = true;
        break;
      case "--driver":
        flags.driver = value();
        break;
      case "--dry-run":
        flags.dryRun = true;
        break;
      case "--cache-ttl":
        flags.cacheTtl = value();
        break;
      case "--cache-max":
        flags.cacheMax = value();
        break;
      case "--log-ttl":
        flags.logTtl = value();
        break;
      case "--keep-logs":
        flags.keepLogs = value();
        break;
      case "--json":
        flags.json = true;
        break;
      case "--state-dir":
        flags.stateDir = value();
        break;
      default:
        throw new UsageError(`unknown argument ${arg}; see \`pocketci gc --help\``);
    }
  });
  return flags;
}

/** Runs `pocketci gc`. */
export async function main(args: string[]): Promise<number> {
  const flags = parseGcFlags(args);
  if (flags.help) {
    write(GC_HELP);
    return 0;
  }
  const { resolveDsn } = await import("../dsn/mod.ts");
  const { collectGarbage } = await import("../runner/gc.ts");
  const { getDriverFactory } = await import("../drivers/registry.ts");
  const cacheTtlMs = await durationFlag("--cache-ttl", flags.cacheTtl);
  const cacheMaxBytes = flags.cacheMax === undefined
    ? undefined
    : await sizeFlag("--cache-max", flags.cacheMax);
  const logTtlMs = await durationFlag("--log-ttl", flags.logTtl);
  const keepLogs = keepLogsFlag(flags.keepLogs);
  const env = Deno.env.toObject();
  const dsn = flags.driver === undefined
    ? undefined
    : await driverFlag(flags.driver, { env, cwd: Deno.cwd() });
  const stateDir = await stateDirFlag(flags.stateDir, env);
  const report = await collectGarbage({
    stateDir,
    dsn,
    defaultDsn: (driver) => resolveDsn(driver, { env, cwd: Deno.cwd() }),
    factory: getDriverFactory,
    cacheTtlMs,
    cacheMaxBytes,
    logs: { ttlMs: logTtlMs, keep: keepLogs },
    dryRun: flags.dryRun,
  });
  for (const action of report.actions) {
    const { kind, id, driver, detail } = action.resource;
    const what = detail?.role === "logs" ? "logs" : `${driver} ${kind}`;
    if (flags.json) write(JSON.stringify({ type: "resource", ...action }));
    else write(`${action.action.padEnd(12)} ${what} ${id} (${action.reason})`);
  }
  for (const problem of report.problems) {
    if (flags.json) write(JSON.stringify({ type: "problem", message: problem }));
    else write(`problem      ${problem}`);
  }
  if (flags.json) {
    write(
      JSON.stringify({
        type: "summary",
        liveRuns: report.liveRuns,
        actions: report.actions.length,
      }),
    );
  } else if (report.actions.length === 0) {
    write(
      `nothing to collect${
        report.liveRuns.length ? ` (${report.liveRuns.length} live run(s) skipped)` : ""
      }`,
    );
  }
  const failed = report.actions.some((action) => action.action === "failed") ||
    report.problems.length > 0;
  return failed ? 1 : 0;
}

/** A size such as `10GB`, `500MB` or `2Gi`, parsed like the DSL's memory limits. */
export async function sizeFlag(flag: string, text: string): Promise<number> {
  const { parseMemoryBytes } = await import("../dsl/parse.ts");
  try {
    return parseMemoryBytes(text);
  } catch {
    throw new UsageError(
      `${flag}: expected a positive size such as 10GB, 500MB or 2Gi (bytes without a unit), not "${text}"`,
    );
  }
}

function keepLogsFlag(text: string): number {
  if (!/^\d+$/.test(text)) {
    throw new UsageError(
      `--keep-logs: expected a whole number of runs (0 or more), e.g. --keep-logs=50, not "${text}"`,
    );
  }
  return Number(text);
}
