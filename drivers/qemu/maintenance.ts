/**
 * `pocketci gc` support for the qemu driver: lists the namespace's caches, and removes caches,
 * the VMs of dead runs (by their recorded PID, only while its start time still matches) and
 * their directories (only directories the driver marked as its own).
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
import { cacheSizes, listCaches, removeCache } from "../native/caches.ts";
import { processStartTime } from "../native/proc_stat.ts";
import { realDir, removalTarget } from "../../runner/removal_path.ts";
import { cacheRoot, MARKER_FILE } from "./layout.ts";

/** Maintenance access to the qemu resources of `context.namespace`. */
export async function createQemuMaintenance(context: DriverContext): Promise<DriverMaintenance> {
  const root = await cacheRoot(context.stateDir, context.namespace);
  return {
    listResources: async () =>
      (await listCaches(root, context.namespace)).map((resource) => ({
        ...resource,
        driver: "qemu" as const,
      })),
    cacheSizes: (caches) => cacheSizes(root, caches),
    async removeResource(resource: ResourceRecord): Promise<void> {
      switch (resource.kind) {
        case "cache":
          return await removeConfinedCache(root, resource.id);
        case "vm":
          return await killRecordedVm(resource);
        case "dir":
          return await removeMarkedDir(resource.id);
        default:
          throw new DriverError("invalid", `the qemu driver has no ${resource.kind} resources`);
      }
    },
  };
}

/** Kills a dead run's QEMU process, recognised by its recorded start time. */
export async function killRecordedVm(resource: ResourceRecord): Promise<void> {
  const pid = Number(resource.id);
  if (!Number.isInteger(pid) || pid <= 1) {
    throw new DriverError("invalid", `"${resource.id}" is not a process ID`);
  }
  const recorded = resource.detail?.startTime;
  const current = await processStartTime(pid);
  if (current === undefined) return; // gone
  if (recorded === undefined || current !== recorded) {
    throw new DriverError(
      "failed",
      `process ${pid} is running but ${
        recorded === undefined
          ? "no start time was recorded"
          : "it is not the VM the run started (its start time differs)"
      }, so it was left alone; if it is the run's VM, end it with: kill ${pid}`,
    );
  }
  try {
    Deno.kill(pid, "SIGKILL");
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Removes a directory only when it (after resolving symlinks) carries the driver's marker. */
export async function removeMarkedDir(dir: string): Promise<void> {
  if (!dir.startsWith("/") || dir === "/") {
    throw new DriverError("invalid", `"${dir}" is not an absolute directory path`);
  }
  const target = await removalTarget(dir);
  if (target === undefined) return;
  const marked = await Deno.lstat(joinPath(target.path, MARKER_FILE)).then(() => true, () => false);
  if (!marked) {
    if (!(await Deno.lstat(target.path).then(() => true, () => false))) return;
    throw new DriverError(
      "invalid",
      `"${dir}" is not a directory of the qemu driver (no ${MARKER_FILE} in it); refusing to remove it`,
    );
  }
  await Deno.remove(target.path, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

async function removeConfinedCache(root: string, dir: string): Promise<void> {
  const refuse = (real: string) =>
    new DriverError(
      "invalid",
      `"${dir}" is not a cache of this namespace (it is ${real}); refusing to remove it`,
    );
  const target = await removalTarget(dir).catch(() => {
    throw refuse(dir);
  });
  if (target === undefined) return;
  const realRoot = await realDir(root);
  if (target.parent !== realRoot) throw refuse(target.path);
  await removeCache(realRoot, target.path);
}
