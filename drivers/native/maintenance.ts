/**
 * `pocketci gc` support for the native driver: lists the namespace's caches and
 * removes caches, processes, directories and cgroups that dead runs left behind.
 *
 * @module
 */

import { joinPath } from "../archive/paths.ts";
import {
  type DriverContext,
  DriverError,
  type DriverMaintenance,
  type ResourceRecord,
} from "../contract.ts";
import { cacheSizes, listCaches, removeCache } from "./caches.ts";
import { cacheRoot, MARKER_FILE } from "./layout.ts";
import { groupAlive, signalGroup } from "./process_group.ts";
import { processStartTime } from "./proc_stat.ts";
import { TEARDOWN_SCRIPT } from "./cgroup_limits.ts";
import { runShell } from "./shell.ts";
import { realDir, removalTarget } from "../../runner/removal_path.ts";

/** Maintenance access to the native resources of `context.namespace`. */
export async function createNativeMaintenance(context: DriverContext): Promise<DriverMaintenance> {
  const root = await cacheRoot(context.stateDir, context.namespace);
  return {
    listResources: () => listCaches(root, context.namespace),
    cacheSizes: (caches) => cacheSizes(root, caches),
    async removeResource(resource: ResourceRecord): Promise<void> {
      switch (resource.kind) {
        case "cache":
          return await removeConfinedCache(root, resource.id);
        case "process":
          return await killRecordedGroup(resource);
        case "dir":
          return await removeRecordedDir(resource);
        case "cgroup":
          return await removeRecordedCgroup(resource);
        default:
          throw new DriverError("invalid", `the native driver has no ${resource.kind} resources`);
      }
    },
  };
}

async function killRecordedGroup(resource: ResourceRecord): Promise<void> {
  const pid = Number(resource.id);
  const pgid = Number(resource.detail?.pgid ?? resource.id);
  if (!Number.isInteger(pid) || pid <= 1 || !Number.isInteger(pgid) || pgid <= 1) {
    throw new DriverError("invalid", `"${resource.id}" is not a process ID`);
  }
  // Only the recorded leader, recognised by its start time, proves that the group is
  // still the one the run started: its pid may have been reused since.
  const recorded = resource.detail?.startTime;
  if (recorded !== undefined && (await processStartTime(pid)) === recorded) {
    signalGroup(pgid, "SIGKILL");
    return;
  }
  if (!(await groupAlive(pgid))) return;
  throw new DriverError(
    "failed",
    `process group ${pgid} is still running but its identity cannot be confirmed (${
      recorded === undefined ? "no start time was recorded" : "its leader is gone or was replaced"
    }), so it was left alone; if it is the task's, end it with: kill -KILL -- -${pgid}`,
  );
}

async function removeRecordedDir(resource: ResourceRecord): Promise<void> {
  const dir = resource.id;
  if (!dir.startsWith("/") || dir === "/") {
    throw new DriverError("invalid", `"${dir}" is not an absolute directory path`);
  }
  // Judged on what would really be deleted: `..` resolved and the parent's symlinks
  // followed (a forged journal line could otherwise name a directory outside).
  const target = await removalTarget(dir);
  if (target === undefined) return;
  // Only directories inside a workspace the native driver marked as its own.
  let current = target.path;
  while (current.length > 1) {
    if (await exists(joinPath(current, MARKER_FILE))) {
      await Deno.remove(target.path, { recursive: true }).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
      return;
    }
    current = current.slice(0, current.lastIndexOf("/")) || "/";
  }
  if (!(await exists(target.path))) return;
  throw new DriverError(
    "invalid",
    `"${dir}" is not inside a native driver workspace (it is ${target.path}); refusing to remove it`,
  );
}

/** Removes a cache directory that is, `..` resolved and symlinks followed, right under `root`. */
async function removeConfinedCache(root: string, dir: string): Promise<void> {
  const refuse = (real: string) =>
    new DriverError(
      "invalid",
      `"${dir}" is not a cache of this namespace (it is ${real}); refusing to remove it`,
    );
  const target = await removalTarget(dir).catch(() => {
    throw refuse(dir);
  });
  if (target === undefined) return; // its parent is gone, and so is it
  const realRoot = await realDir(root);
  if (target.parent !== realRoot) throw refuse(target.path);
  await removeCache(realRoot, target.path);
}

/**
 * Kills what is left in a cgroup a dead run recorded and removes it. Only paths of the
 * driver's own layout (`.../pocketci/<run>` or `.../pocketci/<run>/<task>`) under
 * /sys/fs/cgroup, on a cgroup file system, are touched.
 */
async function removeRecordedCgroup(resource: ResourceRecord): Promise<void> {
  const dir = resource.id;
  const parts = dir.split("/");
  const at = parts.lastIndexOf("pocketci");
  const tail = parts.length - at - 1;
  if (
    !dir.startsWith(`${CGROUP_MOUNT}/`) || at < 1 || tail < 1 || tail > 2 ||
    parts.some((part, index) => index > 0 && (part === "" || part === "." || part === ".."))
  ) {
    throw new DriverError("invalid", `"${dir}" is not a cgroup the native driver creates`);
  }
  const result = await runShell(TEARDOWN_SCRIPT, ["", "", "check", dir]);
  if (result.code !== 0) {
    throw new DriverError(
      "failed",
      `could not remove the cgroup ${dir}: ${result.stderr.trim().split("\n").at(-1)}`,
    );
  }
}

const CGROUP_MOUNT = "/sys/fs/cgroup";

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}
