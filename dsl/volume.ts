/**
 * Volumes (live for the run) and caches (survive runs of the same namespace).
 *
 * @module
 */

import { currentHost, type VolumeInfo } from "./host.ts";
import type { ExportOptions, VolumeOptions } from "./types.ts";

/** A volume or cache: mount it into tasks, read and write its files, export it to the host. */
export class Volume {
  /** The logical name. */
  readonly name: string;
  /** Run-scoped volume or namespace-scoped cache. */
  readonly kind: "volume" | "cache";
  /** The runner's ID for it. */
  readonly id: string;

  /** Wraps a volume the runner created; use {@link volume} or {@link cache} instead. */
  constructor(info: VolumeInfo) {
    this.name = info.name;
    this.kind = info.kind;
    this.id = info.id;
    Object.freeze(this);
  }

  /** Reads regular files as text, keyed by their path in the volume; directories are read recursively. */
  readFiles(paths: readonly string[]): Promise<Record<string, string>> {
    return currentHost().readFiles(this.id, [...paths]);
  }

  /** Reads one file's bytes. */
  readFile(path: string): Promise<Uint8Array> {
    return currentHost().readFile(this.id, path);
  }

  /** Writes files (text or bytes), creating parent directories. */
  writeFiles(files: Readonly<Record<string, string | Uint8Array>>): Promise<void> {
    return currentHost().writeFiles(this.id, { ...files });
  }

  /**
   * Copies the volume's contents, or those of `options.path` inside it, into a host
   * directory (relative to the pipeline file's directory; it must lie inside that
   * directory or one granted with `--allow-write`).
   */
  exportTo(hostDir: string, options: ExportOptions = {}): Promise<void> {
    return currentHost().exportTo(this.id, hostDir, options.path);
  }
}

function checkName(kind: string, name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) {
    throw new Error(
      `invalid ${kind} name "${name}": use up to 63 letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
  }
}

/** Creates a volume that lives for the run, optionally seeded from a host directory. */
export async function volume(name: string, options: VolumeOptions = {}): Promise<Volume> {
  checkName("volume", name);
  const info = await currentHost().createVolume({
    name,
    kind: "volume",
    from: options.from,
    exclude: options.exclude ? [...options.exclude] : undefined,
  });
  return new Volume(info);
}

/** Opens a cache: a volume that survives runs of the same namespace until `pocketci gc` removes it. */
export async function cache(name: string): Promise<Volume> {
  checkName("cache", name);
  return new Volume(await currentHost().createVolume({ name, kind: "cache" }));
}
