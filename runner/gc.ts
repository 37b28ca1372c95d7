/**
 * Garbage collection: removes what dead runs left behind (processes, directories,
 * containers, volumes, machines ... through each driver's maintenance access) and
 * caches unused for longer than a TTL. A live run's resources are never touched:
 * a run is live while its runner process exists with the recorded start time.
 *
 * @module
 */

import type {
  DriverContext,
  DriverFactory,
  DriverMaintenance,
  ResourceRecord,
} from "../drivers/contract.ts";
import type { DriverName, ResolvedDsn } from "../dsn/types.ts";
import { isProcessAlive, type JournalSnapshot, readCacheUses, readJournals } from "./state.ts";

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
  /** Report without removing. */
  readonly dryRun: boolean;
  /** The current time (for tests). */
  readonly now?: Date;
}

/** The result of a gc pass. */
export interface GcReport {
  /** Every action. */
  readonly actions: readonly GcAction[];
  /** Runs skipped because they are alive. */
  readonly liveRuns: readonly string[];
  /** Problems that stopped part of the pass (such as a driver that could not be reached). */
  readonly problems: readonly string[];
}

function oneLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}

function maintenanceContext(stateDir: string, namespace: string): DriverContext {
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
  const remove = async (
    resource: ResourceRecord,
    reason: string,
    how: () => Promise<void>,
  ): Promise<boolean> => {
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
  for (const journal of dead) {
    const header = journal.header!;
    if (!wanted(header.driver)) continue;
    let complete = true;
    const reason = `left by dead run ${header.runId}`;
    const removed: ResourceRecord[] = [];
    // Newest first: a container goes before the volume and network it uses.
    for (const resource of [...journal.outstanding].reverse()) {
      if (resource.kind === "cache") continue;
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

  // 2. Caches unused for longer than the TTL, never one a live run uses.
  const uses = await readCacheUses(options.stateDir);
  const inUse = new Set(
    live.flatMap((journal) =>
      journal.outstanding.filter((r) => r.kind === "cache").map((r) => `${r.driver}/${r.id}`)
    ),
  );
  const namespaces = new Set<string>();
  for (const use of uses.values()) {
    if (wanted(use.driver)) namespaces.add(`${use.driver}\u0000${use.namespace}`);
  }
  if (options.dsn?.namespaceFromDsn) {
    namespaces.add(`${options.dsn.driver}\u0000${options.dsn.namespace}`);
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
    for (const resource of resources) {
      if (resource.kind !== "cache") continue;
      const id = `${resource.driver}/${resource.id}`;
      if (inUse.has(id)) continue;
      const lastUse = Math.max(
        resource.createdAt ? Date.parse(resource.createdAt) || 0 : 0,
        uses.has(id) ? Date.parse(uses.get(id)!.usedAt) || 0 : 0,
      );
      const idleMs = now - lastUse;
      if (idleMs <= options.cacheTtlMs) continue;
      await remove(
        resource,
        `cache unused for ${Math.floor(idleMs / 3_600_000)} h (TTL ${
          Math.round(options.cacheTtlMs / 3_600_000)
        } h)`,
        () => maintenance.removeResource(resource),
      );
    }
  }
  return { actions, liveRuns, problems };
}

async function removeRunnerDir(stateDir: string, dir: string): Promise<void> {
  const root = `${stateDir}/work/`;
  if (!dir.startsWith(root) || dir.slice(root.length).includes("/") || dir.includes("..")) {
    throw new Error(`"${dir}" is not a run directory under ${root}; refusing to remove it`);
  }
  await Deno.remove(dir, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}
