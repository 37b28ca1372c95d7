/**
 * Finds out whether this host lets the native driver hold tasks to CPU and memory
 * limits through Linux cgroups, and where: cgroup v2 (a parent whose memory and cpu
 * controllers can be enabled for children) or cgroup v1 (writable memory and cpu
 * hierarchies). When neither works the result says why, for the error a pipeline
 * using limits gets.
 *
 * Deno grants access to /proc and /sys only with --allow-all, so the files are read
 * by small `/bin/sh` scripts (the native driver holds --allow-run anyway).
 *
 * @module
 */

import { runShell, runShellSync, type ShellResult } from "./shell.ts";

/** Where limited tasks' cgroups are created, when the host allows it. */
export interface CgroupLayout {
  /** Which cgroup version is used. */
  readonly version: 1 | 2;
  /** The cgroup directory under which `pocketci/<run>/<task>` is created for memory limits. */
  readonly memoryParent: string;
  /** The same for CPU limits (equal to `memoryParent` on cgroup v2). */
  readonly cpuParent: string;
  /** cgroup v1 has `memory.memsw.limit_in_bytes`, v2 `memory.swap.max`: swap can be limited too. */
  readonly swap: boolean;
  /** cgroup v2: `memoryParent`'s subtree_control still needs `+memory +cpu`. */
  readonly enableInParent: boolean;
}

/** The outcome of {@link detectCgroups}. */
export type CgroupSupport =
  | { readonly available: true; readonly layout: CgroupLayout }
  | { readonly available: false; readonly reason: string };

/** One line of /proc/self/cgroup. */
export interface ProcCgroup {
  /** Hierarchy ID (0 for the v2 unified hierarchy). */
  readonly id: string;
  /** Controllers bound to the hierarchy (empty for v2). */
  readonly controllers: readonly string[];
  /** The process's cgroup path inside that hierarchy. */
  readonly path: string;
}

/** A cgroup file system mount from /proc/self/mountinfo. */
export interface CgroupMount {
  /** `cgroup` (v1) or `cgroup2`. */
  readonly type: "cgroup" | "cgroup2";
  /** The path inside the hierarchy that is mounted (`/` unless a container sees a subtree). */
  readonly root: string;
  /** Where it is mounted. */
  readonly mountPoint: string;
  /** v1: the controllers named in the super options. */
  readonly controllers: readonly string[];
}

/** What the probe script found in one directory. */
export interface DirProbe {
  /** The directory exists. */
  readonly exists: boolean;
  /** The directory is writable (children can be created). */
  readonly writable: boolean;
  /** Interface files present, with whether each is writable. */
  readonly files: ReadonlyMap<string, boolean>;
  /** cgroup v2 `cgroup.controllers`. */
  readonly controllers: readonly string[];
  /** cgroup v2 `cgroup.subtree_control`. */
  readonly subtree: readonly string[];
  /** 1 when `cgroup.procs` lists any process, else 0. */
  readonly procs: number;
}

// Shell builtins only (no fork per file): detection runs at the start of every run.
const DUMP_SCRIPT =
  `while IFS= read -r l; do printf '%s\\n' "$l"; done < /proc/self/cgroup || exit 1
echo @@
while IFS= read -r l; do
  case $l in *" - cgroup"*) printf '%s\\n' "$l" ;; esac
done < /proc/self/mountinfo`;

const PROBE_FILES = [
  "cgroup.procs",
  "cgroup.type",
  "cgroup.subtree_control",
  "memory.limit_in_bytes",
  "memory.memsw.limit_in_bytes",
  "cpu.cfs_quota_us",
  "memory.max",
  "memory.swap.max",
  "cpu.max",
];

const PROBE_SCRIPT = `for d; do
  echo "dir $d"
  [ -d "$d" ] || continue
  echo exists
  [ -w "$d" ] && echo writable
  for f in ${PROBE_FILES.join(" ")}; do
    if [ -w "$d/$f" ]; then echo "file $f w"; elif [ -e "$d/$f" ]; then echo "file $f r"; fi
  done
  if [ -r "$d/cgroup.controllers" ]; then
    c=; read -r c < "$d/cgroup.controllers"; echo "controllers $c"
  fi
  if [ -r "$d/cgroup.subtree_control" ]; then
    c=; read -r c < "$d/cgroup.subtree_control"; echo "subtree $c"
  fi
  if [ -r "$d/cgroup.procs" ]; then
    n=0; while read -r p; do n=1; break; done < "$d/cgroup.procs"; echo "procs $n"
  fi
done
exit 0`;

let cached: Promise<CgroupSupport> | undefined;
let cachedSync: CgroupSupport | undefined;

/** Detects cgroup support once per process (the answer does not change while it runs). */
export function detectCgroups(): Promise<CgroupSupport> {
  if (cachedSync !== undefined) return Promise.resolve(cachedSync);
  cached ??= detectOnce().catch(failed).then((support) => cachedSync = support);
  return cached;
}

function failed(error: unknown): CgroupSupport {
  return {
    available: false,
    reason: `could not inspect the host's cgroups (${
      (error as Error).message
    }); or use --driver=docker`,
  };
}

/** {@link detectCgroups} for synchronous callers (the factory's `capabilities()`). */
export function detectCgroupsSync(): CgroupSupport {
  if (cachedSync !== undefined) return cachedSync;
  if (Deno.build.os !== "linux") return cachedSync = NOT_LINUX;
  try {
    const plan = planFromDump(runShellSync(DUMP_SCRIPT, []));
    if (!("candidates" in plan)) return cachedSync = plan;
    const probes = parseProbe(runShellSync(PROBE_SCRIPT, plan.candidates));
    return cachedSync = decideSupport(plan, probes);
  } catch (error) {
    return cachedSync = failed(error);
  }
}

const NOT_LINUX: CgroupSupport = {
  available: false,
  reason: `limits need Linux cgroups and this host runs ${Deno.build.os}; use --driver=docker`,
};

async function detectOnce(): Promise<CgroupSupport> {
  if (Deno.build.os !== "linux") return NOT_LINUX;
  const plan = planFromDump(await runShell(DUMP_SCRIPT, []));
  if (!("candidates" in plan)) return plan;
  return decideSupport(plan, parseProbe(await runShell(PROBE_SCRIPT, plan.candidates)));
}

/** What the dump of /proc/self/cgroup and mountinfo means, and which directories to probe. */
export interface CgroupPlan {
  /** The v2 cgroup of this process and the v2 hierarchy root, when a v2 hierarchy is mounted. */
  readonly v2?: { readonly own: string; readonly root?: string; readonly mountPoint: string };
  /** The v1 memory and cpu cgroups of this process, when those hierarchies are mounted. */
  readonly v1: { readonly memory?: string; readonly cpu?: string };
  /** Every directory the probe should look at. */
  readonly candidates: string[];
}

/** Parses the output of the dump script into the directories worth probing. */
export function planFromDump(
  result: ShellResult,
): CgroupPlan | { readonly available: false; readonly reason: string } {
  const [cgroupText, mountText] = result.stdout.split("\n@@\n");
  if (result.code !== 0 || mountText === undefined) {
    return {
      available: false,
      reason: `could not read /proc/self/cgroup (${
        result.stderr.trim() || `exit ${result.code}`
      }); limits need Linux cgroups, or use --driver=docker`,
    };
  }
  const groups = parseProcCgroup(cgroupText);
  const mounts = parseMountInfo(mountText);
  const candidates: string[] = [];
  let v2: CgroupPlan["v2"];
  const unified = groups.find((group) => group.id === "0" && group.controllers.length === 0);
  const v2Mount = mounts.find((mount) => mount.type === "cgroup2");
  if (unified !== undefined && v2Mount !== undefined) {
    const own = cgroupDir(v2Mount, unified.path);
    const root = v2Mount.root === "/" ? v2Mount.mountPoint : undefined;
    if (own !== undefined) {
      v2 = { own, root, mountPoint: v2Mount.mountPoint };
      candidates.push(own);
      if (root !== undefined && root !== own) candidates.push(root);
    }
  }
  const v1Dir = (controller: string): string | undefined => {
    const mount = mounts.find((m) => m.type === "cgroup" && m.controllers.includes(controller));
    const group = groups.find((g) => g.controllers.includes(controller));
    return mount && group ? cgroupDir(mount, group.path) : undefined;
  };
  const v1 = { memory: v1Dir("memory"), cpu: v1Dir("cpu") };
  for (const dir of [v1.memory, v1.cpu]) {
    if (dir !== undefined && !candidates.includes(dir)) candidates.push(dir);
  }
  return { v2, v1, candidates };
}

/** Decides from the probe which layout to use, or why limits cannot be applied. */
export function decideSupport(plan: CgroupPlan, probes: Map<string, DirProbe>): CgroupSupport {
  const reasons: string[] = [];
  if (plan.v2 !== undefined) {
    const v2 = decideV2(plan.v2, probes);
    if ("layout" in v2) return { available: true, layout: v2.layout };
    if (v2.reason !== undefined) reasons.push(v2.reason);
  }
  const v1 = decideV1(plan.v1, probes);
  if ("layout" in v1) return { available: true, layout: v1.layout };
  if (v1.reason !== undefined) reasons.push(v1.reason);
  if (reasons.length === 0) {
    reasons.push("no cgroup hierarchy with the memory and cpu controllers is mounted");
  }
  return { available: false, reason: `${reasons.join("; ")}; or use --driver=docker` };
}

type Decision = { layout: CgroupLayout } | { reason?: string };

function decideV2(v2: NonNullable<CgroupPlan["v2"]>, probes: Map<string, DirProbe>): Decision {
  const own = probes.get(v2.own);
  const offers = (probe: DirProbe | undefined) =>
    probe !== undefined && probe.controllers.includes("memory") &&
    probe.controllers.includes("cpu");
  const rootProbe = v2.root === undefined ? undefined : probes.get(v2.root);
  if (!offers(own) && !offers(rootProbe)) {
    // A hybrid host mounts v2 without controllers; v1 decides then.
    return {};
  }
  const usable = (dir: string, probe: DirProbe | undefined): Decision => {
    if (probe === undefined || !offers(probe)) {
      return { reason: `the cgroup v2 group ${dir} does not offer the memory and cpu controllers` };
    }
    const enabled = probe.subtree.includes("memory") && probe.subtree.includes("cpu");
    const writable = probe.writable && (probe.files.get("cgroup.subtree_control") ?? false);
    if (!writable) {
      return {
        reason:
          `cgroup v2 memory and cpu controllers are not delegated to this user (${dir} is not writable); run as root or in a delegated cgroup`,
      };
    }
    const isRoot = !probe.files.has("cgroup.type");
    if (!enabled && !isRoot && probe.procs > 0) {
      return {
        reason:
          `the runner's cgroup v2 group ${dir} holds processes, so its memory and cpu controllers cannot be enabled for child groups (no internal processes rule); run PocketCI from the root cgroup or as root on the host`,
      };
    }
    return {
      layout: {
        version: 2,
        memoryParent: dir,
        cpuParent: dir,
        swap: true,
        enableInParent: !enabled,
      },
    };
  };
  const fromOwn = usable(v2.own, own);
  if ("layout" in fromOwn || v2.root === undefined || v2.root === v2.own) return fromOwn;
  const fromRoot = usable(v2.root, rootProbe);
  return "layout" in fromRoot ? fromRoot : fromOwn;
}

function decideV1(v1: CgroupPlan["v1"], probes: Map<string, DirProbe>): Decision {
  if (v1.memory === undefined || v1.cpu === undefined) {
    if (v1.memory === undefined && v1.cpu === undefined) return {};
    return {
      reason: `no cgroup v1 ${v1.memory === undefined ? "memory" : "cpu"} hierarchy is mounted`,
    };
  }
  const memory = probes.get(v1.memory);
  const cpu = probes.get(v1.cpu);
  for (
    const [dir, probe, file] of [
      [v1.memory, memory, "memory.limit_in_bytes"],
      [v1.cpu, cpu, "cpu.cfs_quota_us"],
    ] as const
  ) {
    if (probe === undefined || !probe.exists || !probe.files.has(file)) {
      return { reason: `the cgroup v1 group ${dir} has no ${file}` };
    }
    if (!probe.writable || !(probe.files.get("cgroup.procs") ?? false)) {
      return {
        reason:
          `the cgroup v1 group ${dir} is not writable by this user; run as root or use a writable cgroup mount`,
      };
    }
  }
  return {
    layout: {
      version: 1,
      memoryParent: v1.memory,
      cpuParent: v1.cpu,
      swap: memory!.files.has("memory.memsw.limit_in_bytes"),
      enableInParent: false,
    },
  };
}

/** Parses /proc/self/cgroup. */
export function parseProcCgroup(text: string): ProcCgroup[] {
  const groups: ProcCgroup[] = [];
  for (const line of text.split("\n")) {
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    groups.push({
      id: line.slice(0, first),
      controllers: controllers === "" ? [] : controllers.split(","),
      path: line.slice(second + 1),
    });
  }
  return groups;
}

/** Parses the cgroup mounts out of /proc/self/mountinfo. */
export function parseMountInfo(text: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of text.split("\n")) {
    const separator = line.indexOf(" - ");
    if (separator < 0) continue;
    const fields = line.slice(0, separator).split(" ");
    const [type, , superOptions = ""] = line.slice(separator + 3).split(" ");
    if ((type !== "cgroup" && type !== "cgroup2") || fields.length < 5) continue;
    mounts.push({
      type,
      root: unescapeMount(fields[3]),
      mountPoint: unescapeMount(fields[4]),
      controllers: type === "cgroup" ? superOptions.split(",") : [],
    });
  }
  return mounts;
}

/** Parses the probe script's output. */
export function parseProbe(result: ShellResult): Map<string, DirProbe> {
  const probes = new Map<string, DirProbe>();
  let current: {
    dir: string;
    exists: boolean;
    writable: boolean;
    files: Map<string, boolean>;
    controllers: string[];
    subtree: string[];
    procs: number;
  } | undefined;
  for (const line of result.stdout.split("\n")) {
    const space = line.indexOf(" ");
    const word = space < 0 ? line : line.slice(0, space);
    const rest = space < 0 ? "" : line.slice(space + 1);
    if (word === "dir") {
      current = {
        dir: rest,
        exists: false,
        writable: false,
        files: new Map(),
        controllers: [],
        subtree: [],
        procs: 0,
      };
      probes.set(rest, current);
    } else if (current === undefined) {
      continue;
    } else if (word === "exists") {
      current.exists = true;
    } else if (word === "writable") {
      current.writable = true;
    } else if (word === "file") {
      const [name, mode] = rest.split(" ");
      current.files.set(name, mode === "w");
    } else if (word === "controllers") {
      current.controllers = rest.split(" ").filter(Boolean);
    } else if (word === "subtree") {
      current.subtree = rest.split(" ").filter(Boolean);
    } else if (word === "procs") {
      current.procs = Number(rest.trim()) || 0;
    }
  }
  return probes;
}

function cgroupDir(mount: CgroupMount, path: string): string | undefined {
  let inside: string;
  if (mount.root === "/") inside = path;
  else if (path === mount.root) inside = "/";
  else if (path.startsWith(`${mount.root}/`)) inside = path.slice(mount.root.length);
  else return undefined;
  if (inside.split("/").includes("..")) return undefined;
  return inside === "/" ? mount.mountPoint : `${mount.mountPoint}${inside}`;
}

function unescapeMount(field: string): string {
  return field.replace(
    /\\([0-7]{3})/g,
    (_, octal: string) => String.fromCharCode(parseInt(octal, 8)),
  );
}
