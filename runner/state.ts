/**
 * The state directory: every run appends what it creates to its own journal
 * (`runs/<runId>.jsonl`) as it creates it, so `pocketci gc` can find what a run
 * killed with `kill -9` left behind, and tell a live run (its process still exists
 * with the same start time) from a dead one.
 *
 * Layout under the state directory:
 * - `runs/<runId>.jsonl`: the journal (header line, then `record`/`forget` lines, then `end`);
 * - `work/<runId>/`: the run's scratch directory (`DriverContext.runDir`);
 * - `logs/<runId>/`: the run's logs, kept after the run until `gc` prunes them (`--log-ttl`,
 *   `--keep-logs`; the namespace is in the first line of `events.jsonl`, the `run.start` event);
 * - `namespaces/<namespace>/`: namespace-scoped driver state such as native caches;
 * - `caches.jsonl`: when each cache was last used, for `gc --cache-ttl`.
 *
 * @module
 */

import type { ResourceRecord } from "../drivers/contract.ts";

/** The state directory: `$POCKETCI_STATE_DIR`, else `$XDG_STATE_HOME/pocketci`, else `~/.local/state/pocketci`. */
export function defaultStateDir(env: Readonly<Record<string, string | undefined>>): string {
  if (env.POCKETCI_STATE_DIR) return env.POCKETCI_STATE_DIR;
  if (env.XDG_STATE_HOME) return `${env.XDG_STATE_HOME}/pocketci`;
  if (env.HOME) return `${env.HOME}/.local/state/pocketci`;
  throw new Error("cannot find a state directory: set POCKETCI_STATE_DIR or HOME");
}

/** Where a run's files live. */
export interface RunPaths {
  /** The journal. */
  readonly journal: string;
  /** Scratch directory for drivers. */
  readonly workDir: string;
  /** Log directory. */
  readonly logDir: string;
  /** Namespace-scoped driver state. */
  readonly namespaceDir: string;
}

/** The paths of run `runId` in namespace `namespace`. */
export function runPaths(stateDir: string, runId: string, namespace: string): RunPaths {
  return {
    journal: `${stateDir}/runs/${runId}.jsonl`,
    workDir: `${stateDir}/work/${runId}`,
    logDir: `${stateDir}/logs/${runId}`,
    namespaceDir: `${stateDir}/namespaces/${namespace.replace(/[^A-Za-z0-9_.-]/g, "_")}`,
  };
}

/** Identifies the runner process so `gc` can tell whether it is still alive. */
export interface ProcessIdentity {
  /** The runner's pid. */
  readonly pid: number;
  /** Its start time in clock ticks since boot (`/proc/PID/stat` field 22), when known. */
  readonly startTime?: string;
}

/** The first line of a journal. */
export interface RunHeader {
  /** Line type. */
  readonly type: "run";
  /** Journal format version. */
  readonly version: 1;
  /** The run's ID. */
  readonly runId: string;
  /** The namespace. */
  readonly namespace: string;
  /** The driver's name. */
  readonly driver: string;
  /** The driver services run on when it is not the run's (`--service-driver`). */
  readonly serviceDriver?: string;
  /** The pipeline file. */
  readonly pipeline: string;
  /** The runner process. */
  readonly process: ProcessIdentity;
  /** When the run started (ISO). */
  readonly startedAt: string;
}

type JournalLine =
  | RunHeader
  | { readonly type: "record"; readonly resource: ResourceRecord }
  | { readonly type: "forget"; readonly resource: ResourceRecord }
  | { readonly type: "end"; readonly at: string };

/** Reads the start time of `pid` from /proc; undefined when unknown (no /proc, no permission, gone). */
export async function processStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // The command name (field 2) may contain spaces; fields after it are space separated.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19];
  } catch {
    return undefined;
  }
}

/** Whether the process still exists and, when the start time is known, is the same process. */
export async function isProcessAlive(identity: ProcessIdentity): Promise<boolean> {
  try {
    await Deno.stat(`/proc/${identity.pid}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return !(await procAvailable());
    }
    return true; // cannot tell: treat as alive, never touch it
  }
  if (identity.startTime === undefined) return true;
  const now = await processStartTime(identity.pid);
  return now === undefined || now === identity.startTime;
}

async function procAvailable(): Promise<boolean> {
  try {
    await Deno.stat("/proc/self");
    return true;
  } catch {
    return false;
  }
}

function resourceKey(resource: ResourceRecord): string {
  return `${resource.driver}\u0000${resource.kind}\u0000${resource.id}`;
}

/** The append-only journal of one run. */
export class RunJournal {
  readonly #path: string;
  readonly #file: Deno.FsFile;
  readonly #encoder = new TextEncoder();
  readonly #outstanding = new Map<string, ResourceRecord>();

  private constructor(path: string, file: Deno.FsFile) {
    this.#path = path;
    this.#file = file;
  }

  /** Creates the journal and writes its header. */
  static async create(
    path: string,
    header: Omit<RunHeader, "type" | "version">,
  ): Promise<RunJournal> {
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    const file = await Deno.open(path, { createNew: true, write: true, append: true });
    const journal = new RunJournal(path, file);
    await journal.#append({ type: "run", version: 1, ...header });
    return journal;
  }

  #append(line: JournalLine): Promise<void> {
    // One synchronous write per line on a file opened for appending: the line is in
    // the kernel (which survives this process being killed) before the caller goes
    // on, without a round trip through the async file thread pool per resource.
    try {
      const bytes = this.#encoder.encode(JSON.stringify(line) + "\n");
      let offset = 0;
      while (offset < bytes.length) offset += this.#file.writeSync(bytes.subarray(offset));
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Records a resource as soon as it exists. */
  record(resource: ResourceRecord): Promise<void> {
    this.#outstanding.set(resourceKey(resource), resource);
    return this.#append({ type: "record", resource });
  }

  /** Forgets a resource after it was removed. */
  forget(resource: ResourceRecord): Promise<void> {
    this.#outstanding.delete(resourceKey(resource));
    return this.#append({ type: "forget", resource });
  }

  /** Resources recorded and not forgotten (caches included). */
  outstanding(): ResourceRecord[] {
    return [...this.#outstanding.values()];
  }

  /**
   * Ends the journal. When nothing but caches is outstanding the journal is deleted;
   * otherwise it stays for `gc`.
   */
  async finish(): Promise<void> {
    await this.#append({ type: "end", at: new Date().toISOString() });
    this.#file.close();
    const left = this.outstanding().filter((resource) => resource.kind !== "cache");
    if (left.length === 0) await Deno.remove(this.#path).catch(() => {});
  }
}

/** A journal read back. */
export interface JournalSnapshot {
  /** The journal's path. */
  readonly path: string;
  /** Its header (undefined when the first line is unreadable). */
  readonly header?: RunHeader;
  /** Resources recorded and not forgotten, in recording order. */
  readonly outstanding: readonly ResourceRecord[];
  /** Whether the run wrote its `end` line. */
  readonly ended: boolean;
}

/** Parses a journal; tolerates a torn last line (a crash mid-write). */
export function parseJournal(path: string, text: string): JournalSnapshot {
  let header: RunHeader | undefined;
  let ended = false;
  const outstanding = new Map<string, ResourceRecord>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let parsed: JournalLine;
    try {
      parsed = JSON.parse(line);
    } catch {
      continue;
    }
    if (parsed.type === "run") header = parsed;
    else if (parsed.type === "record") {
      outstanding.set(resourceKey(parsed.resource), parsed.resource);
    } else if (parsed.type === "forget") outstanding.delete(resourceKey(parsed.resource));
    else if (parsed.type === "end") ended = true;
  }
  return { path, header, outstanding: [...outstanding.values()], ended };
}

/** Reads every journal in the state directory. */
export async function readJournals(stateDir: string): Promise<JournalSnapshot[]> {
  const snapshots: JournalSnapshot[] = [];
  try {
    for await (const entry of Deno.readDir(`${stateDir}/runs`)) {
      if (!entry.isFile || !entry.name.endsWith(".jsonl")) continue;
      const path = `${stateDir}/runs/${entry.name}`;
      const text = await Deno.readTextFile(path).catch(() => "");
      snapshots.push(parseJournal(path, text));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return snapshots;
}

/** One use of a cache, appended to `caches.jsonl`. */
export interface CacheUse {
  /** The driver's name. */
  readonly driver: string;
  /** The namespace. */
  readonly namespace: string;
  /** The cache's logical name. */
  readonly name: string;
  /** The driver's ID for it. */
  readonly id: string;
  /** When it was used (ISO). */
  readonly usedAt: string;
}

/** Notes that a cache was used now. */
export async function recordCacheUse(stateDir: string, use: CacheUse): Promise<void> {
  await Deno.mkdir(stateDir, { recursive: true });
  await Deno.writeTextFile(`${stateDir}/caches.jsonl`, JSON.stringify(use) + "\n", {
    append: true,
  });
}

/** The last use of each cache, keyed by `driver/id`. */
export async function readCacheUses(stateDir: string): Promise<Map<string, CacheUse>> {
  const uses = new Map<string, CacheUse>();
  const text = await Deno.readTextFile(`${stateDir}/caches.jsonl`).catch(() => "");
  for (const line of text.split("\n")) {
    try {
      const use = JSON.parse(line) as CacheUse;
      const key = `${use.driver}/${use.id}`;
      const previous = uses.get(key);
      if (!previous || previous.usedAt < use.usedAt) uses.set(key, use);
    } catch {
      // a torn or empty line
    }
  }
  return uses;
}
