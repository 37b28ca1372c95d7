/**
 * Which run log directories (`<state dir>/logs/<run id>/`) `gc` prunes: those last written to
 * longer ago than the TTL, and in each namespace all but the newest N. A live run's logs are
 * never pruned, nor are those of a run that may be starting: a run creates its log directory
 * just before its journal, so logs written to in the last minute with no journal at all are
 * kept too.
 *
 * @module
 */

import { describeDuration } from "../dsn/duration.ts";

/** Logs written to this recently, by a run with no journal, may be a run's that is starting. */
export const STARTING_RUN_MS = 60_000;

/** One run's log directory. */
export interface LogDir {
  /** The directory's name: the run ID. */
  readonly runId: string;
  /** Its path. */
  readonly path: string;
  /** The run's namespace (from its `run.start` event), when readable. */
  readonly namespace?: string;
  /** The run's driver (from its `run.start` event), when readable. */
  readonly driver?: string;
  /** When the run last wrote to it (epoch ms). */
  readonly lastWriteMs: number;
}

/** How log directories are pruned. */
export interface LogPolicy {
  /** Logs last written to longer ago than this are removed. */
  readonly ttlMs: number;
  /** At most this many runs per namespace keep their logs (live runs count). */
  readonly keep: number;
}

/** What else {@link logsToPrune} needs to know. */
export interface LogFacts {
  /** The current time (epoch ms). */
  readonly now: number;
  /** Runs whose journal says they are live. */
  readonly liveRuns: ReadonlySet<string>;
  /** Runs that have a journal, live or dead. */
  readonly journalRuns: ReadonlySet<string>;
}

const HEAD_BYTES = 64 * 1024;

async function runStart(path: string): Promise<{ namespace?: string; driver?: string }> {
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(path, { read: true });
    const buffer = new Uint8Array(HEAD_BYTES);
    let length = 0;
    while (length < buffer.length) {
      const read = await file.read(buffer.subarray(length));
      if (read === null) break;
      length += read;
      if (buffer.subarray(0, length).includes(0x0a)) break;
    }
    const text = new TextDecoder().decode(buffer.subarray(0, length));
    const end = text.indexOf("\n");
    const event = JSON.parse(end === -1 ? text : text.slice(0, end));
    if (event?.type !== "run.start") return {};
    return {
      namespace: typeof event.namespace === "string" ? event.namespace : undefined,
      driver: typeof event.driver === "string" ? event.driver : undefined,
    };
  } catch {
    return {}; // missing, unreadable or torn: the directory is judged by its age alone
  } finally {
    file?.close();
  }
}

async function mtimeMs(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).mtime?.getTime();
  } catch {
    return undefined;
  }
}

/** Every run log directory under `<stateDir>/logs` (symlinks and files are not log directories). */
export async function readLogDirs(stateDir: string): Promise<LogDir[]> {
  const root = `${stateDir}/logs`;
  const dirs: LogDir[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(root));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  for (const entry of entries) {
    if (!entry.isDirectory) continue;
    const path = `${root}/${entry.name}`;
    const events = `${path}/events.jsonl`;
    // Every event is appended to events.jsonl, so its mtime is the run's last write.
    const lastWriteMs = (await mtimeMs(events)) ?? (await mtimeMs(path)) ?? 0;
    dirs.push({ runId: entry.name, path, lastWriteMs, ...(await runStart(events)) });
  }
  return dirs;
}

/** The log directories to remove, each with the reason. */
export function logsToPrune(
  dirs: readonly LogDir[],
  policy: LogPolicy,
  facts: LogFacts,
): Array<{ readonly dir: LogDir; readonly reason: string }> {
  const byNamespace = new Map<string, LogDir[]>();
  for (const dir of dirs) {
    const key = dir.namespace ?? "";
    byNamespace.set(key, [...(byNamespace.get(key) ?? []), dir]);
  }
  const prune: Array<{ dir: LogDir; reason: string }> = [];
  const inUse = (dir: LogDir) =>
    facts.liveRuns.has(dir.runId) ||
    (!facts.journalRuns.has(dir.runId) && facts.now - dir.lastWriteMs < STARTING_RUN_MS);
  // A run that is still writing its logs is the newest of its namespace.
  const newest = (dir: LogDir) => inUse(dir) ? Infinity : dir.lastWriteMs;
  for (const [namespace, group] of byNamespace) {
    group.sort((a, b) => newest(b) - newest(a) || (a.runId < b.runId ? 1 : -1));
    let kept = 0;
    for (const dir of group) {
      const age = facts.now - dir.lastWriteMs;
      if (inUse(dir)) {
        kept++;
      } else if (age > policy.ttlMs) {
        prune.push({
          dir,
          reason: `logs last written ${describeDuration(age)} ago (--log-ttl ${
            describeDuration(policy.ttlMs)
          })`,
        });
      } else if (kept >= policy.keep) {
        prune.push({
          dir,
          reason: `older than the newest ${policy.keep} runs of namespace ${
            namespace || "(unknown)"
          } (--keep-logs)`,
        });
      } else {
        kept++;
      }
    }
  }
  return prune;
}
