/**
 * Where the qemu driver keeps things, on the host and in the guest, and how a task's mounts
 * and working directory are checked and turned into the wrapper's arguments.
 *
 * Host: `<runDir>/qemu` is exported over 9p as tag `pocketci` and mounted at `/mnt/pocketci`
 * in the guest; it holds `volumes/<name>` and `io/<call>` (the wrapper's output files). Caches
 * live in `<stateDir>/qemu/caches/<namespace>`, exported as tag `pocketci-caches` and mounted
 * at `/mnt/pocketci-caches`. The VM's own files (sockets, overlay, seed, console log) are in a
 * private temporary directory with a short path, as Unix socket paths are limited to 108 bytes.
 *
 * @module
 */

import { ArchivePathError, isInside, joinPath, normalizeRelative } from "../archive/paths.ts";
import { DriverError, type Mount, type VolumeHandle } from "../contract.ts";
import { safeName } from "../native/layout.ts";

/** The file marking a directory as the qemu driver's own (checked by `gc` before removing it). */
export const MARKER_FILE = ".pocketci-qemu";

/** The guest mount point of the run's share. */
export const GUEST_SHARE = "/mnt/pocketci";
/** The guest mount point of the namespace's caches. */
export const GUEST_CACHES = "/mnt/pocketci-caches";
/** Where task and sandbox directories live in the guest. */
export const GUEST_WORK = "/var/lib/pocketci";

/** The run's shared directory: `<runDir>/qemu`. */
export function shareDir(runDir: string): string {
  return joinPath(runDir, "qemu");
}

/** The namespace's cache directory: `<stateDir>/qemu/caches/<namespace>`. */
export async function cacheRoot(stateDir: string, namespace: string): Promise<string> {
  return joinPath(stateDir, `qemu/caches/${await safeName(namespace)}`);
}

/** Maps volume handles (host directories) to their guest paths. */
export class GuestPaths {
  readonly #share: string;
  readonly #caches: string;

  /** For the run's share directory and the namespace's cache root. */
  constructor(share: string, caches: string) {
    this.#share = share;
    this.#caches = caches;
  }

  /** The guest path of a volume or cache this driver created; refuses foreign handles. */
  volume(volume: VolumeHandle): string {
    const root = volume.kind === "cache" ? this.#caches : joinPath(this.#share, "volumes");
    const guest = volume.kind === "cache" ? GUEST_CACHES : `${GUEST_SHARE}/volumes`;
    if (!volume.id.startsWith(`${root}/`) || !isInside(root, volume.id)) {
      throw new DriverError(
        "invalid",
        `volume "${volume.name}" was not created by this qemu driver (${volume.id})`,
      );
    }
    return `${guest}/${volume.id.slice(root.length + 1)}`;
  }

  /** The host and guest paths of a call's I/O directory. */
  io(name: string): { host: string; guest: string } {
    return { host: joinPath(this.#share, `io/${name}`), guest: `${GUEST_SHARE}/io/${name}` };
  }
}

/** A mount as the wrapper takes it: guest source and target. */
export interface PlannedMount {
  /** The volume's guest directory. */
  readonly source: string;
  /** Relative to the task's directory, or absolute. */
  readonly target: string;
}

/** Checks a task's mounts and orders them outermost first. */
export function planMounts(
  taskName: string,
  mounts: readonly Mount[],
  paths: GuestPaths,
): PlannedMount[] {
  return mounts.map((mount) => {
    const absolute = mount.path.startsWith("/");
    const relative = checkedPath(
      taskName,
      "mount path",
      absolute ? mount.path.slice(1) : mount.path,
    );
    if (relative === "") {
      throw new DriverError(
        "invalid",
        `task "${taskName}": volume "${mount.volume.name}" cannot be mounted at "${mount.path}"; give it a sub-path such as "${mount.volume.name}"`,
      );
    }
    return { source: paths.volume(mount.volume), target: absolute ? `/${relative}` : relative };
  }).sort((a, b) => a.target.length - b.target.length);
}

/** A working directory as the wrapper takes it: "" (the task's directory), relative or absolute. */
export function plannedWorkDir(taskName: string, workDir: string | undefined): string {
  if (workDir === undefined) return "";
  if (workDir.startsWith("/")) {
    return `/${checkedPath(taskName, "working directory", workDir.slice(1))}`;
  }
  return checkedPath(taskName, "working directory", workDir);
}

function checkedPath(taskName: string, what: string, path: string): string {
  try {
    return normalizeRelative(path);
  } catch (error) {
    if (error instanceof ArchivePathError) {
      throw new DriverError(
        "invalid",
        `task "${taskName}": ${what} "${path}" must not contain ".."`,
      );
    }
    throw error;
  }
}
