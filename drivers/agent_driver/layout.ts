/**
 * Where things live in the guest: a task's fresh directory under the machine's tasks
 * directory, its relative mounts as symlinks into the shared volumes directory, and the
 * working directory resolved against the task's directory (never against another
 * workDir), as the contract says.
 *
 * @module
 */

import { DriverError, type Mount } from "../contract.ts";
import { ArchivePathError, normalizeRelative } from "../archive/paths.ts";
import type { AgentClient } from "../agent_client/client.ts";

/** The PATH a task gets when its env has none. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** A relative path inside a root, normalised; `..` escaping it is an `invalid` DriverError. */
export function relativeInside(path: string, what: string): string {
  try {
    return normalizeRelative(path);
  } catch (error) {
    if (error instanceof ArchivePathError) {
      throw new DriverError("invalid", `${what} "${path}" leaves its directory; remove the ".."`);
    }
    throw error;
  }
}

/** The directory name of a task or sandbox ID (IDs are run-scoped, printable). */
export function taskDirName(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "_") || "_";
}

/** Absolute mount paths are refused: the guest's own directories are not the driver's. */
export function checkMounts(driver: string, mounts: readonly Mount[]): void {
  for (const mount of mounts) {
    if (mount.path.startsWith("/")) {
      throw new DriverError(
        "invalid",
        `the ${driver} driver mounts volumes only at paths relative to the task's directory; "${mount.path}" is absolute (use a relative path)`,
      );
    }
    relativeInside(mount.path, "mount path");
  }
}

/** The guest path of a working directory given relative to `dir`, or absolute. */
export function resolveWorkDir(dir: string, workDir: string | undefined): string {
  if (workDir === undefined) return dir;
  if (workDir.startsWith("/")) return workDir;
  const relative = relativeInside(workDir, "workDir");
  return relative === "" ? dir : `${dir}/${relative}`;
}

/**
 * Creates `dir`, a symlink per mount to its volume's guest path, and the working
 * directory. Returns the working directory.
 */
export async function layOut(
  client: AgentClient,
  dir: string,
  mounts: readonly { readonly path: string; readonly target: string }[],
  workDir: string | undefined,
): Promise<string> {
  await client.fs({ op: "mkdir", path: dir });
  for (const mount of mounts) {
    const relative = relativeInside(mount.path, "mount path");
    const parent = relative.includes("/") ? relative.slice(0, relative.lastIndexOf("/")) : "";
    if (parent !== "") await client.fs({ op: "mkdir", path: `${dir}/${parent}` });
    await client.fs({ op: "symlink", path: `${dir}/${relative}`, target: mount.target });
  }
  const cwd = resolveWorkDir(dir, workDir);
  if (cwd !== dir && !(workDir ?? "").startsWith("/")) await client.fs({ op: "mkdir", path: cwd });
  return cwd;
}
