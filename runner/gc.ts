/**
 * Garbage collection: removes what dead runs left behind (processes, directories,
 * containers, volumes, machines ... through each driver's maintenance access): what
 * their journals recorded, and what a driver lists labelled with a run that is not
 * live (created while the runner crashed, before its journal line); caches unused for
 * longer than a TTL; and old run logs. A live run's resources are never touched: a run
 * is live while its runner process exists with the recorded start time.
 *
 * @module
 */

import type {
  DriverContext,
  DriverFactory,
  DriverMaintenance,
  ResourceRecord,
} from "../drivers/contract.ts";
import { describeDuration } from "../dsn/duration.ts";
import type { DriverName, ResolvedDsn } from "../dsn/types.ts";
import { type LogPolicy, logsToPrune, readLogDirs } from "./gc_logs.ts";
import { realDir, removalTarget } from "./removal_path.ts";
import {
  isProcessAlive,
  type JournalSnapshot,
  parseJournal,
  readCacheUses,
  readJournals,
} from "./state.ts";

/** What gc did (or would do) with one resource. */
export interface GcAction {
  /** `removed`, `would-remove` (dry run), `failed` or `kept` (live run). */
  readonly action: "removed" | "would-remove" | "failed";
  /** The resource. */
  readonly resource: ResourceRecord;
  /** Why it was removed, or why removing failed. */
  readonly reason: string;
}

/** Options for {@link collectGarbage}. */
export interface GcOptions {
  /** The state directory. */
  readonly stateDir: string;
  /** Only this driver configuration (undefined: every driver seen in the state directory). */
  readonly dsn?: ResolvedDsn;
  /** Resolves a driver's default configuration (for drivers seen without `--driver`). */
  readonly defaultDsn: (driver: DriverName) => ResolvedDsn;
  /** Loads a driver factory. */
  readonly factory: (driver: DriverName) => Promise<DriverFactory>;
  /** Caches unused for longer than this are removed. */
  readonly cacheTtlMs: number;
  /**
   * `--cache-max`: when the caches seen (every namespace examined) hold more bytes than this,
   * the least recently used ones not in use by a live run are removed until they fit.
   */
  readonly cacheMaxBytes?: number;
  /**
   * The automatic pass after a run: only caches and run logs, and only `namespace` of `dsn`'s
   * driver; what dead runs left behind waits for `pocketci gc`.
   */
  readonly cachesAndLogsOnly?: boolean;
  /** With `dsn`: examine this namespace only. */
  readonly namespace?: string;
  /** When set (ms since the epoch): nothing more is removed after it (the automatic pass). */
  readonly deadline?: number;
  /** How run logs are pruned (undefined: they are not). */
  readonly logs?: LogPolicy;
  /** Report without removing. */
  readonly dryRun: boolean;
  /** The current time (for tests). */
  readonly now?: Date;
}

/** The result of a gc pass. */
export interface GcReport {
  /** Every action. */
  readonly actions: readonly GcAction[];
  /** Runs whose resources were left alone because they are alive. */
  readonly liveRuns: readonly string[];
  /** Problems that stopped part of the pass (such as a driver that could not be reached). */
  readonly problems: readonly string[];
}

const OUT_OF_TIME = "stopped at its time limit; `pocketci gc` removes the rest";

function oneLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}

/** The driver context gc hands a driver's maintenance access for one namespace. */
export function maintenanceContext(stateDir: string, namespace: string): DriverContext {
  return {
    namespace,
    runId: "gc",
    runDir: `${stateDir}/work/gc`,
    stateDir,
    record: () => Promise.resolve(),
    forget: () => Promise.resolve(),
    warn: () => {},
  };
}

/** Runs one gc pass. */
export async function collectGarbage(options: GcOptions): Promise<GcReport> {
  const now = (options.now ?? new Date()).getTime();
  const actions: GcAction[] = [];
  const problems: string[] = [];
  const liveRuns: string[] = [];
  const journals = await readJournals(options.stateDir);
  const live: JournalSnapshot[] = [];
  const dead: JournalSnapshot[] = [];
  for (const journal of journals) {
    if (journal.header === undefined) continue;
    if (await isProcessAlive(journal.header.process)) {
      live.push(journal);
      liveRuns.push(journal.header.runId);
    } else {
      dead.push(journal);
    }
  }
  const wanted = (driver: string) => options.dsn === undefined || options.dsn.driver === driver;
  const maintenances = new Map<string, DriverMaintenance | null>();
  const maintenanceFor = async (
    driver: DriverName,
    namespace: string,
  ): Promise<DriverMaintenance | undefined> => {
    const key = `${driver}\u0000${namespace}`;
    if (maintenances.has(key)) return maintenances.get(key) ?? undefined;
    let maintenance: DriverMaintenance | null = null;
    try {
      const dsn = options.dsn?.driver === driver ? options.dsn : options.defaultDsn(driver);
      const factory = await options.factory(driver);
      if (factory.maintenance) {
        maintenance = await factory.maintenance(
          dsn.config,
          maintenanceContext(options.stateDir, namespace),
        );
      }
    } catch (error) {
      problems.push(
        `cannot reach the ${driver} driver (namespace ${namespace}): ${
          oneLine(error)
        }; pass --driver=DSN for it`,
      );
    }
    maintenances.set(key, maintenance);
    return maintenance ?? undefined;
  };
  const handled = new Set<string>();
  const remove = async (
    resource: ResourceRecord,
    reason: string,
    how: () => Promise<void>,
  ): Promise<boolean> => {
    handled.add(resourceKey(resource));
    if (options.deadline !== undefined && Date.now() > options.deadline) {
      if (!problems.includes(OUT_OF_TIME)) problems.push(OUT_OF_TIME);
      return false;
    }
    if (options.dryRun) {
      actions.push({ action: "would-remove", resource, reason });
      return true;
    }
    try {
      await how();
      actions.push({ action: "removed", resource, reason });
      return true;
    } catch (error) {
      actions.push({ action: "failed", resource, reason: oneLine(error) });
      return false;
    }
  };

  // 1. What dead runs recorded and never forgot (caches survive runs).
  for (const journal of options.cachesAndLogsOnly ? [] : dead) {
    const header = journal.header!;
    // A run with --service-driver names two drivers; each resource names its own.
    if (!wanted(header.driver) && !wanted(header.serviceDriver ?? header.driver)) continue;
    let complete = true;
    const reason = `left by dead run ${header.runId}`;
    const removed: ResourceRecord[] = [];
    // Newest first: a container goes before the volume and network it uses.
    for (const resource of [...journal.outstanding].reverse()) {
      if (resource.kind === "cache") continue;
      if (header.serviceDriver !== undefined && !wanted(resource.driver)) {
        complete = false;
        continue;
      }
      let ok: boolean;
      if (resource.detail?.owner === "runner" && resource.kind === "dir") {
        ok = await remove(resource, reason, () => removeRunnerDir(options.stateDir, resource.id));
      } else {
        const maintenance = await maintenanceFor(
          resource.driver,
          resource.namespace ?? header.namespace,
        );
        if (maintenance === undefined) {
          complete = false;
          continue;
        }
        ok = await remove(resource, reason, () => maintenance.removeResource(resource));
      }
      complete &&= ok;
      if (ok) removed.push(resource);
    }
    if (options.dryRun) continue;
    if (complete) {
      await Deno.remove(journal.path).catch(() => {});
    } else if (removed.length > 0) {
      // Keep the journal for the next pass, without what is already gone.
      const lines = removed.map((resource) => JSON.stringify({ type: "forget", resource }) + "\n");
      await Deno.writeTextFile(journal.path, lines.join(""), { append: true }).catch(() => {});
    }
  }

  // 2. What each driver lists in the namespaces seen here: resources labelled with a run
  // that is not live (a run killed before its journal line), and caches past the TTL.
  const liveIds = new Set(liveRuns);
  const isLive = (runId: string) => runIsLive(options.stateDir, runId, liveIds);
  const uses = await readCacheUses(options.stateDir);
  const inUse = new Set(
    live.flatMap((journal) =>
      journal.outstanding.filter((r) => r.kind === "cache").map((r) => `${r.driver}/${r.id}`)
    ),
  );
  const logDirs = options.logs ? await readLogDirs(options.stateDir) : [];
  const namespaces = new Set<string>();
  const see = (driver: string | undefined, namespace: string | undefined) => {
    if (
      driver !== undefined && namespace !== undefined && wanted(driver) &&
      (options.namespace === undefined || options.namespace === namespace)
    ) {
      namespaces.add(`${driver}\u0000${namespace}`);
    }
  };
  if (options.dsn && options.namespace !== undefined) see(options.dsn.driver, options.namespace);
  const keptCaches: KeptCache[] = [];
  for (const use of uses.values()) see(use.driver, use.namespace);
  for (const journal of journals) {
    see(journal.header?.driver, journal.header?.namespace);
    see(journal.header?.serviceDriver, journal.header?.namespace);
  }
  if (options.dsn) {
    // Asked for by name, the driver is reached for every namespace its runs' logs name too.
    for (const dir of logDirs) {
      if (dir.driver === options.dsn.driver) see(dir.driver, dir.namespace);
    }
    if (options.dsn.namespaceFromDsn) see(options.dsn.driver, options.dsn.namespace);
  }
  for (const key of namespaces) {
    const [driver, namespace] = key.split("\u0000") as [DriverName, string];
    const maintenance = await maintenanceFor(driver, namespace);
    if (maintenance === undefined) continue;
    let resources: ResourceRecord[];
    try {
      resources = await maintenance.listResources();
    } catch (error) {
      problems.push(`cannot list ${driver} resources of namespace ${namespace}: ${oneLine(error)}`);
      continue;
    }
    for (const resource of [...resources].sort((a, b) => removalOrder(a) - removalOrder(b))) {
      if (options.cachesAndLogsOnly) break;
      if (resource.kind === "cache" || resource.runId === undefined) continue;
      if (handled.has(resourceKey(resource)) || await isLive(resource.runId)) continue;
      await remove(
        resource,
        `labelled with run ${resource.runId}, which is not live`,
        () => maintenance.removeResource(resource),
      );
    }
    for (const resource of resources) {
      if (resource.kind !== "cache") continue;
      const id = `${resource.driver}/${resource.id}`;
      const lastUse = Math.max(
        resource.createdAt ? Date.parse(resource.createdAt) || 0 : 0,
        uses.has(id) ? Date.parse(uses.get(id)!.usedAt) || 0 : 0,
      );
      if (inUse.has(id)) {
        keptCaches.push({ resource, maintenance, lastUse, inUse: true });
        continue;
      }
      const idleMs = now - lastUse;
      if (idleMs <= options.cacheTtlMs) {
        keptCaches.push({ resource, maintenance, lastUse, inUse: false });
        continue;
      }
      await remove(
        resource,
        `cache unused for ${describeDuration(idleMs)} (--cache-ttl ${
          describeDuration(options.cacheTtlMs)
        })`,
        () => maintenance.removeResource(resource),
      );
    }
  }

  if (options.cacheMaxBytes !== undefined) {
    await capCaches(keptCaches, options.cacheMaxBytes, now, remove, problems);
  }

  // 3. Run logs past the TTL or beyond the newest N of their namespace, never a live run's.
  if (options.logs) {
    const prune = logsToPrune(logDirs, options.logs, {
      now,
      liveRuns: liveIds,
      journalRuns: new Set(journals.flatMap((j) => j.header ? [j.header.runId] : [])),
    });
    for (const { dir, reason } of prune) {
      if (await isLive(dir.runId)) continue;
      const resource: ResourceRecord = {
        kind: "dir",
        id: dir.path,
        // Every run's first event names its driver; logs without one are judged by age alone.
        driver: (dir.driver ?? "native") as DriverName,
        runId: dir.runId,
        ...(dir.namespace === undefined ? {} : { namespace: dir.namespace }),
        createdAt: new Date(dir.lastWriteMs).toISOString(),
        detail: { owner: "runner", role: "logs" },
      };
      await remove(resource, reason, () => removeLogDir(options.stateDir, dir.path));
    }
  }
  return { actions, liveRuns, problems };
}

/** A cache gc kept after the TTL check, for the size cap. */
interface KeptCache {
  readonly resource: ResourceRecord;
  readonly maintenance: DriverMaintenance;
  /** Last use, ms since the epoch. */
  readonly lastUse: number;
  /** A live run uses it: it counts towards the total but is never removed. */
  readonly inUse: boolean;
}

/**
 * `--cache-max`: measures the kept caches and removes the least recently used ones (never one
 * a live run uses) until their total is at most `maxBytes`.
 */
async function capCaches(
  caches: readonly KeptCache[],
  maxBytes: number,
  now: number,
  remove: (resource: ResourceRecord, reason: string, how: () => Promise<void>) => Promise<boolean>,
  problems: string[],
): Promise<void> {
  const sizes = new Map<KeptCache, number>();
  const byMaintenance = new Map<DriverMaintenance, KeptCache[]>();
  for (const cache of caches) {
    const group = byMaintenance.get(cache.maintenance) ?? [];
    group.push(cache);
    byMaintenance.set(cache.maintenance, group);
  }
  for (const [maintenance, group] of byMaintenance) {
    const driver = group[0].resource.driver;
    if (maintenance.cacheSizes === undefined) {
      problems.push(`cannot measure ${driver} caches; --cache-max leaves them alone`);
      continue;
    }
    try {
      const measured = await maintenance.cacheSizes(group.map((cache) => cache.resource));
      for (const cache of group) {
        const size = measured.get(cache.resource.id);
        if (size !== undefined) sizes.set(cache, size);
      }
    } catch (error) {
      problems.push(`cannot measure ${driver} caches for --cache-max: ${oneLine(error)}`);
    }
  }
  let total = [...sizes.values()].reduce((sum, size) => sum + size, 0);
  const oldestFirst = [...sizes.keys()].filter((cache) => !cache.inUse).sort((a, b) =>
    a.lastUse - b.lastUse
  );
  for (const cache of oldestFirst) {
    if (total <= maxBytes) break;
    const size = sizes.get(cache)!;
    const reason = `caches hold ${describeBytes(total)}, over --cache-max ${
      describeBytes(maxBytes)
    }; least recently used (${describeDuration(Math.max(0, now - cache.lastUse))} ago), ${
      describeBytes(size)
    }`;
    const removed = await remove(
      cache.resource,
      reason,
      () => cache.maintenance.removeResource(cache.resource),
    );
    if (removed) total -= size;
  }
}

/** Bytes in words: `512 B`, `1.5 KB`, `10.0 GB` (decimal units, as `--cache-max=10GB` means). */
export function describeBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Containers first: a volume or network in use by one cannot be removed. */
function removalOrder(resource: ResourceRecord): number {
  return resource.kind === "container" ? 0 : resource.kind === "network" ? 2 : 1;
}

function resourceKey(resource: ResourceRecord): string {
  return `${resource.driver}\u0000${resource.kind}\u0000${resource.id}`;
}

/**
 * Whether run `runId` is live, its journal read again: a run that started after this pass
 * read the journals has written its journal before creating anything a driver lists.
 */
async function runIsLive(
  stateDir: string,
  runId: string,
  known: ReadonlySet<string>,
): Promise<boolean> {
  if (known.has(runId)) return true;
  if (!/^[A-Za-z0-9_-]+$/.test(runId)) return false; // no journal can have such a name
  const path = `${stateDir}/runs/${runId}.jsonl`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    return true; // cannot tell: treat as alive, never touch it
  }
  const header = parseJournal(path, text).header;
  return header !== undefined && await isProcessAlive(header.process);
}

/** Removes `<stateDir>/logs/<run>`, judged on its real path. */
async function removeLogDir(stateDir: string, dir: string): Promise<void> {
  await removeDirectlyUnder(`${stateDir}/logs`, dir, "a run log directory");
}

async function removeRunnerDir(stateDir: string, dir: string): Promise<void> {
  await removeDirectlyUnder(`${stateDir}/work`, dir, "a run directory");
}

/**
 * Removes `dir` when, `.` and `..` resolved and its parent's symlinks followed, it lies right
 * under `root` (itself compared by real path): a forged journal line cannot reach elsewhere.
 */
async function removeDirectlyUnder(root: string, dir: string, what: string): Promise<void> {
  const refuse = (real: string) =>
    new Error(`"${dir}" is not ${what} under ${root} (it is ${real}); refusing to remove it`);
  const target = await removalTarget(dir).catch(() => {
    throw refuse(dir);
  });
  if (target === undefined) return; // its parent is gone, and so is it
  if (target.parent !== await realDir(root)) throw refuse(target.path);
  await Deno.remove(target.path, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}
