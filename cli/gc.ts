/**
 * `pocketci gc`: removes what dead runs left behind and caches unused for longer
 * than `--cache-ttl`; never a live run's resources.
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import { driverFlag, durationFlag, stateDirFlag, walkFlags, writeOut as write } from "./flags.ts";

/** The help text of `pocketci gc`. */
export const GC_HELP =
  `Usage: pocketci gc [--driver=DSN] [--dry-run] [--cache-ttl=7d] [--json] [--state-dir DIR]

Removes processes, directories and driver resources (containers, volumes, machines ...)
that runs which no longer exist left behind, and caches unused for longer than
--cache-ttl (default 7d). Resources of live runs are never touched.

  --driver DSN       only this driver (needed for drivers whose defaults cannot reach them)
  --dry-run          print what would be removed, remove nothing
  --cache-ttl D      remove caches unused for longer than D (e.g. 12h, 7d)
  --json             one JSON object per line
  --state-dir DIR    state directory (default: $POCKETCI_STATE_DIR, $XDG_STATE_HOME/pocketci
                     or ~/.local/state/pocketci)

Exit codes: 0 done, 1 something could not be removed, 2 bad flags.`;

interface GcFlags {
  driver?: string;
  dryRun: boolean;
  cacheTtl: string;
  json: boolean;
  stateDir?: string;
  help: boolean;
}

/** Parses the flags of `pocketci gc`. */
export function parseGcFlags(argv: readonly string[]): GcFlags {
  const flags: GcFlags = { dryRun: false, cacheTtl: "7d", json: false, help: false };
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
    dryRun: flags.dryRun,
  });
  for (const action of report.actions) {
    const { kind, id, driver } = action.resource;
    if (flags.json) write(JSON.stringify({ type: "resource", ...action }));
    else write(`${action.action.padEnd(12)} ${driver} ${kind} ${id} (${action.reason})`);
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
