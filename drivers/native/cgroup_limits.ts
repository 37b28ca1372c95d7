/**
 * CPU and memory limits for native tasks and sandboxes through Linux cgroups: one
 * child group per limited task or sandbox, `pocketci/<run>/<task>` under the parent
 * {@link detectCgroups} chose, created before the process starts and removed (after
 * killing whatever is left in it) when it ends. Every group is recorded before it is
 * created, so `pocketci gc` removes what a killed run left.
 *
 * @module
 */

import {
  type DriverContext,
  DriverError,
  type ResourceLimits,
  type ResourceRecord,
} from "../contract.ts";
import type { CgroupLayout } from "./cgroup_detect.ts";
import { safeName } from "./layout.ts";
import { runShell } from "./shell.ts";

/** CFS period used for CPU limits, in microseconds (the kernel's default). */
export const CPU_PERIOD_US = 100_000;

/** A task's or sandbox's cgroups. */
export interface LimitGroup {
  /** Leaf directories, one per hierarchy used (one on cgroup v2). */
  readonly dirs: readonly string[];
  /** The `cgroup.procs` files a process writes its PID to before it runs the command. */
  readonly procs: readonly string[];
  /** The file whose `oom_kill` counter tells that the OOM killer struck, when memory is limited. */
  readonly oomFile?: string;
  /** The records of `dirs`, forgotten once they are removed. */
  readonly records: readonly ResourceRecord[];
  /** OOM kills already reported (sandbox calls report only new ones). */
  oomKills: number;
  /** Set once the directories are gone. */
  released: boolean;
}

/** A cgroup the run could not remove, for the driver's cleanup report. */
export interface LimitFailure {
  /** The cgroup's record. */
  readonly resource: ResourceRecord;
  /** Why it could not be removed. */
  readonly reason: string;
}

/** Creates `mkdir DIR`, writes `write FILE VALUE`, and `optional FILE VALUE` when FILE exists. */
const SETUP_SCRIPT = `while [ $# -gt 0 ]; do
  case $1 in
    mkdir) mkdir -p -- "$2" || exit 1; shift 2 ;;
    write|optional)
      if [ "$1" = optional ] && [ ! -e "$2" ]; then shift 3; continue; fi
      if ! printf '%s\\n' "$3" > "$2"; then echo "cannot write $3 to $2" >&2; exit 1; fi
      shift 3 ;;
    *) echo "unknown step $1" >&2; exit 2 ;;
  esac
done`;

/**
 * Prints the OOM counters ($1, $2: files or empty), then for each further directory:
 * checks it is a cgroup when $3 is `check`, kills what is in it until it is empty, and
 * removes it. A
 * directory that vanishes meanwhile (removed by someone else) counts as removed.
 */
export const TEARDOWN_SCRIPT = `oom=$1; failcnt=$2; check=$3; shift 3
if [ -n "$oom" ] && [ -r "$oom" ]; then
  echo "@oom"; while IFS= read -r l; do printf '%s\\n' "$l"; done < "$oom"
fi
if [ -n "$failcnt" ] && [ -r "$failcnt" ]; then read -r n < "$failcnt"; echo "@failcnt $n"; fi
for d; do
  [ -d "$d" ] || continue
  if [ "$check" = check ]; then
    case $(stat -f -c %T "$d") in cgroupfs|cgroup2fs) ;; *) echo "$d is not a cgroup" >&2; exit 1 ;; esac
  fi
  [ -w "$d/cgroup.kill" ] && echo 1 > "$d/cgroup.kill"
  i=0
  while :; do
    pids=
    if [ -r "$d/cgroup.procs" ]; then
      while read -r p; do pids="$pids $p"; done < "$d/cgroup.procs"
    else
      [ -d "$d" ] || continue 2
      echo "cannot read $d/cgroup.procs" >&2; exit 1
    fi
    [ -z "$pids" ] && break
    kill -9 $pids 2>/dev/null
    i=$((i+1))
    if [ $i -gt 500 ]; then echo "processes in $d did not exit after SIGKILL" >&2; exit 1; fi
    sleep 0.01
  done
  if ! rmdir "$d" 2>/dev/null && [ -d "$d" ]; then rmdir "$d"; exit 1; fi
done`;

/** Hooks into the driver's bookkeeping. */
export interface LimitsOwner {
  /** Builds a record of this run. */
  makeRecord(id: string, detail: Record<string, string>): ResourceRecord;
  /** The driver context, to record and forget. */
  readonly context: DriverContext;
  /** Forgets a record and notes it as removed. */
  forget(record: ResourceRecord): Promise<void>;
}

/** The limits of one run: its groups under `pocketci/<run>` in each hierarchy used. */
export class CgroupLimits {
  readonly #layout: CgroupLayout;
  readonly #owner: LimitsOwner;
  readonly #runDirs = new Map<string, Promise<ResourceRecord>>();
  #runName: Promise<string> | undefined;

  /** Limits applied with `layout` for the run `owner` belongs to. */
  constructor(layout: CgroupLayout, owner: LimitsOwner) {
    this.#layout = layout;
    this.#owner = owner;
  }

  /** Creates the cgroups for one task or sandbox and sets its limits. */
  async create(role: "task" | "sandbox", id: string, limits: ResourceLimits): Promise<LimitGroup> {
    const writes = limitWrites(this.#layout, limits);
    const runName = await (this.#runName ??= safeName(
      `${this.#owner.context.namespace}.${this.#owner.context.runId}`,
    ));
    const leaf = await safeName(`${role}-${id}`);
    const parents = [...new Set(writes.map((write) => write.parent))];
    const steps: string[] = [];
    const dirs: string[] = [];
    const records: ResourceRecord[] = [];
    for (const parent of parents) {
      const runDir = `${parent}/pocketci/${runName}`;
      await this.#recordRunDir(runDir);
      const dir = `${runDir}/${leaf}`;
      dirs.push(dir);
      const record = this.#owner.makeRecord(dir, { role: "cgroup", [role]: id });
      await this.#owner.context.record(record);
      records.push(record);
      if (this.#layout.version === 2) {
        const enable = "+memory +cpu";
        if (this.#layout.enableInParent) {
          steps.push("write", `${parent}/cgroup.subtree_control`, enable);
        }
        steps.push("mkdir", `${parent}/pocketci`);
        steps.push("write", `${parent}/pocketci/cgroup.subtree_control`, enable);
        steps.push("mkdir", runDir, "write", `${runDir}/cgroup.subtree_control`, enable);
      }
      steps.push("mkdir", dir);
      for (const write of writes.filter((w) => w.parent === parent)) {
        steps.push(write.optional ? "optional" : "write", `${dir}/${write.file}`, write.value);
      }
    }
    const memoryParent = writes.find((write) => write.controller === "memory")?.parent;
    const memoryDir = memoryParent === undefined ? undefined : dirs[parents.indexOf(memoryParent)];
    const group: LimitGroup = {
      dirs,
      procs: dirs.map((dir) => `${dir}/cgroup.procs`),
      oomFile: memoryDir === undefined
        ? undefined
        : `${memoryDir}/${this.#layout.version === 2 ? "memory.events" : "memory.oom_control"}`,
      records,
      oomKills: 0,
      released: false,
    };
    const result = await runShell(SETUP_SCRIPT, steps);
    if (result.code !== 0) {
      await this.release(group).catch(() => {});
      throw new DriverError(
        "failed",
        `could not set up the cgroup for ${role} "${id}": ${lastLine(result.stderr)}`,
      );
    }
    return group;
  }

  /**
   * Removes a group's directories after killing what is left in them, and tells
   * whether the OOM killer struck since the last report.
   */
  async release(group: LimitGroup): Promise<{ oomKilled: boolean }> {
    if (group.released) return { oomKilled: false };
    const failcnt = this.#layout.version === 1 && group.oomFile !== undefined
      ? group.oomFile.replace(/memory\.oom_control$/, "memory.failcnt")
      : "";
    const result = await runShell(TEARDOWN_SCRIPT, [
      group.oomFile ?? "",
      failcnt,
      "",
      ...group.dirs,
    ]);
    const oomKilled = parseOomKills(result.stdout) > group.oomKills;
    if (result.code !== 0) {
      throw new DriverError("failed", `could not remove the cgroup: ${lastLine(result.stderr)}`);
    }
    group.released = true;
    for (const record of group.records) await this.#owner.forget(record);
    return { oomKilled };
  }

  /** For a sandbox call: whether the OOM killer struck in the group since the last report. */
  async newOomKill(group: LimitGroup): Promise<boolean> {
    if (group.oomFile === undefined || group.released) return false;
    const result = await runShell('cat "$1"', [group.oomFile]);
    const kills = parseOomKills(`@oom\n${result.stdout}`);
    const fresh = kills > group.oomKills;
    group.oomKills = Math.max(group.oomKills, kills);
    return fresh;
  }

  /** Removes the run's own groups (after every task's and sandbox's group is gone). */
  async close(): Promise<LimitFailure[]> {
    const failed: LimitFailure[] = [];
    for (const pending of this.#runDirs.values()) {
      const record = await pending;
      const result = await runShell(TEARDOWN_SCRIPT, ["", "", "", record.id]);
      if (result.code === 0) await this.#owner.forget(record);
      else failed.push({ resource: record, reason: lastLine(result.stderr) });
    }
    this.#runDirs.clear();
    return failed;
  }

  #recordRunDir(dir: string): Promise<ResourceRecord> {
    let pending = this.#runDirs.get(dir);
    if (pending === undefined) {
      const record = this.#owner.makeRecord(dir, { role: "cgroup-run" });
      pending = this.#owner.context.record(record).then(() => record);
      this.#runDirs.set(dir, pending);
      pending.catch(() => this.#runDirs.delete(dir));
    }
    return pending;
  }
}

/** One interface file to write in a new group. */
export interface LimitWrite {
  /** The hierarchy's parent directory. */
  readonly parent: string;
  /** Which controller the file belongs to. */
  readonly controller: "memory" | "cpu";
  /** File name inside the group. */
  readonly file: string;
  /** The value. */
  readonly value: string;
  /** Written only when the file exists (swap accounting may be off). */
  readonly optional?: boolean;
}

/** The interface files and values that apply `limits` in `layout`, in writing order. */
export function limitWrites(layout: CgroupLayout, limits: ResourceLimits): LimitWrite[] {
  const writes: LimitWrite[] = [];
  if (limits.memoryBytes !== undefined) {
    if (!Number.isFinite(limits.memoryBytes) || limits.memoryBytes < 1) {
      throw new DriverError(
        "invalid",
        `memory limit must be a positive number of bytes, got ${limits.memoryBytes}`,
      );
    }
    const bytes = String(Math.floor(limits.memoryBytes));
    const parent = layout.memoryParent;
    if (layout.version === 2) {
      writes.push({ parent, controller: "memory", file: "memory.max", value: bytes });
      writes.push({
        parent,
        controller: "memory",
        file: "memory.swap.max",
        value: "0",
        optional: true,
      });
    } else {
      writes.push({ parent, controller: "memory", file: "memory.limit_in_bytes", value: bytes });
      if (layout.swap) {
        writes.push({
          parent,
          controller: "memory",
          file: "memory.memsw.limit_in_bytes",
          value: bytes,
          optional: true,
        });
      }
    }
  }
  if (limits.cpu !== undefined) {
    if (!Number.isFinite(limits.cpu) || limits.cpu <= 0) {
      throw new DriverError(
        "invalid",
        `cpu limit must be a positive number of cores, got ${limits.cpu}`,
      );
    }
    const quota = String(Math.max(1000, Math.round(limits.cpu * CPU_PERIOD_US)));
    const parent = layout.cpuParent;
    if (layout.version === 2) {
      writes.push({
        parent,
        controller: "cpu",
        file: "cpu.max",
        value: `${quota} ${CPU_PERIOD_US}`,
      });
    } else {
      writes.push({
        parent,
        controller: "cpu",
        file: "cpu.cfs_period_us",
        value: String(CPU_PERIOD_US),
      });
      writes.push({ parent, controller: "cpu", file: "cpu.cfs_quota_us", value: quota });
    }
  }
  return writes;
}

/**
 * The OOM kill count in the teardown output: `oom_kill N` (v1 memory.oom_control, v2
 * memory.events); kernels without that counter report `under_oom 1` or a failcnt.
 */
export function parseOomKills(output: string): number {
  const start = output.indexOf("@oom\n");
  if (start < 0) return 0;
  const text = output.slice(start);
  const kills = /^oom_kill (\d+)$/m.exec(text);
  if (kills) return Number(kills[1]);
  if (/^under_oom 1$/m.test(text)) return 1;
  const failcnt = /^@failcnt (\d+)$/m.exec(text);
  return failcnt && Number(failcnt[1]) > 0 ? 1 : 0;
}

function lastLine(text: string): string {
  const lines = text.trim().split("\n").filter(Boolean);
  return lines.at(-1) ?? "no error output";
}
