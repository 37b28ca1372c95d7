/**
 * Where the native driver keeps things on the host, and how a task's directory is
 * prepared: its working directory and the symlinks that make volumes appear at
 * their mount paths.
 *
 * @module
 */

import { ArchivePathError, isInside, joinPath, normalizeRelative } from "../archive/paths.ts";
import { DriverError, type Mount } from "../contract.ts";

/** The file that marks a directory tree as the native driver's own (checked by `gc`). */
export const MARKER_FILE = ".pocketci-native";

/** The run's workspace: `<runDir>/native`. */
export function workspaceDir(runDir: string): string {
  return joinPath(runDir, "native");
}

/** The namespace's cache directory: `<stateDir>/native/caches/<namespace>`. */
export async function cacheRoot(stateDir: string, namespace: string): Promise<string> {
  return joinPath(stateDir, `native/caches/${await safeName(namespace)}`);
}

/**
 * A file-name-safe, deterministic form of `name`: the name itself when it is plain,
 * otherwise a sanitized prefix plus a hash, so distinct names never collide.
 */
export async function safeName(name: string): Promise<string> {
  if (/^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(name)) return name;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(name));
  const hash = Array.from(
    new Uint8Array(digest).slice(0, 6),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  const plain = name.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^[.-]+/, "").slice(0, 40);
  return plain ? `${plain}-${hash}` : hash;
}

/** The environment every native process starts from: PATH and HOME of the host. */
export function hostBaseEnv(): Record<string, string> {
  return {
    PATH: readEnv("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: readEnv("HOME") ?? "/",
  };
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** What {@link prepareTaskDir} produced. */
export interface PreparedDir {
  /** The process's working directory. */
  readonly cwd: string;
  /** The symlinks created for mounts (removed before the directory). */
  readonly links: readonly string[];
}

/**
 * Prepares `base` (an existing, fresh directory: the task's default working directory)
 * for a task: links each mount's volume at its path relative to `base`, then resolves
 * the working directory, also relative to `base` (so it may lie inside a mount) and
 * created when missing. `volumeDir` maps a handle to its host directory, refusing
 * foreign handles.
 */
export async function prepareTaskDir(
  taskName: string,
  base: string,
  workDir: string | undefined,
  mounts: readonly Mount[],
  volumeDir: (mount: Mount) => string,
): Promise<PreparedDir> {
  if (workDir !== undefined && workDir.startsWith("/")) {
    if (mounts.length > 0) {
      throw new DriverError(
        "invalid",
        `task "${taskName}": the native driver cannot combine mounts with the absolute working directory "${workDir}" (mounts appear inside the task's own directory, which a process working elsewhere cannot find); use a relative workDir`,
      );
    }
    await requireDirectory(taskName, workDir);
    return { cwd: workDir, links: [] };
  }
  const relative = relativeOrThrow(taskName, "working directory", workDir ?? "");
  const planned = mounts.map((mount) => {
    if (mount.path.startsWith("/")) {
      throw new DriverError(
        "invalid",
        `task "${taskName}": the native driver cannot mount volume "${mount.volume.name}" at the absolute path "${mount.path}" (tasks run on the host); use a path relative to the task's directory`,
      );
    }
    const path = relativeOrThrow(taskName, "mount path", mount.path);
    if (path === "") {
      throw new DriverError(
        "invalid",
        `task "${taskName}": volume "${mount.volume.name}" cannot be mounted over the task's directory itself; give it a sub-path such as "${mount.volume.name}"`,
      );
    }
    return { mount, path, target: volumeDir(mount) };
  }).sort((a, b) => a.path.length - b.path.length);
  const links: string[] = [];
  for (const [index, { mount, path, target }] of planned.entries()) {
    const outer = planned.slice(0, index).find((other) =>
      path === other.path || path.startsWith(`${other.path}/`)
    );
    if (outer !== undefined) {
      throw new DriverError(
        "invalid",
        `task "${taskName}": mount path "${mount.path}" lies inside the mount "${outer.mount.path}"; the native driver cannot nest mounts`,
      );
    }
    const link = joinPath(base, path);
    const slash = link.lastIndexOf("/");
    await Deno.mkdir(link.slice(0, slash), { recursive: true });
    await createSymlink(target, link);
    links.push(link);
  }
  // After the links: a workDir at or below a mount path is created inside the volume,
  // as a container engine creates it inside a mounted volume.
  const cwd = joinPath(base, relative);
  if (relative !== "") await Deno.mkdir(cwd, { recursive: true });
  return { cwd, links };
}

/**
 * Resolves a sandbox call's working directory: `fallback` (the sandbox's own) when
 * absent, otherwise relative to `base` (the sandbox's default working directory) or
 * absolute; it must exist.
 */
export async function execWorkDir(
  taskName: string,
  base: string,
  fallback: string,
  workDir?: string,
): Promise<string> {
  if (workDir === undefined) return fallback;
  const cwd = workDir.startsWith("/")
    ? workDir
    : joinPath(base, relativeOrThrow(taskName, "working directory", workDir));
  await requireDirectory(taskName, cwd);
  return cwd;
}

/** Checks that `path` lies inside `root` once symlinks are resolved. */
export async function realInside(root: string, path: string): Promise<boolean> {
  return isInside(await Deno.realPath(root), await Deno.realPath(path));
}

function relativeOrThrow(taskName: string, what: string, path: string): string {
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

async function requireDirectory(taskName: string, path: string): Promise<void> {
  if (!await isDirectory(path)) {
    throw new DriverError(
      "invalid",
      `task "${taskName}": working directory "${path}" does not exist on this host; create it first or use a relative workDir`,
    );
  }
}

/**
 * Whether `path` is a directory (symlinks followed). Under `pocketci run` the driver may
 * read only its state directory and PATH, so a host directory elsewhere (an absolute
 * workDir such as `/tmp`) cannot be stat'ed; the check is then made by `/bin/sh`, as a
 * task would see it (`--allow-run` reaches it anyway), instead of asking for unscoped read.
 */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) return false;
  }
  const result = await new Deno.Command("/bin/sh", {
    args: ["-c", 'test -d "$1"', "sh", path],
    stdin: "null",
    stdout: "null",
    stderr: "null",
    clearEnv: true,
  }).output();
  return result.code === 0;
}

/**
 * Creates a symlink. `Deno.symlink` needs unscoped read and write permissions, which
 * the native driver does not ask for; it holds `--allow-run` anyway, so without them
 * the link is made by `ln -s`.
 */
export async function createSymlink(target: string, path: string): Promise<void> {
  try {
    await Deno.symlink(target, path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) throw error;
    const result = await new Deno.Command("ln", {
      args: ["-s", "--", target, path],
      stdout: "null",
      stderr: "piped",
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin" },
    }).output();
    if (result.code !== 0) {
      throw new Error(
        `could not create the symlink ${path}: ${new TextDecoder().decode(result.stderr).trim()}`,
      );
    }
  }
}
