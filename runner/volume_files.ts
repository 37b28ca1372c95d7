/**
 * Moving files in and out of volumes with the driver's tar streams: seeding from a
 * host directory, `readFiles`, `readFile`, `writeFiles` and `exportTo`.
 *
 * @module
 */

import {
  ArchivePathError,
  createTarStream,
  extractTar,
  listTar,
  normalizeRelative,
  packDirectory,
  readTar,
  tarFromFiles,
  type TarWriteEntry,
} from "../drivers/archive/mod.ts";
import { type Driver, DriverError, type VolumeHandle } from "../drivers/contract.ts";
import {
  exportWriteCheck,
  type HostPathPolicy,
  normalizeAbsolute,
  realPathOfExisting,
} from "./host_paths.ts";

/** Volume file operations over one driver. */
export interface VolumeArchives {
  /** Copies a host directory into the volume. */
  seed(volume: VolumeHandle, hostDir: string, exclude: readonly string[]): Promise<void>;
  /** Reads regular files as text, keyed by their path in the volume. */
  readFiles(volume: VolumeHandle, paths: readonly string[]): Promise<Record<string, string>>;
  /** Reads one file's bytes. */
  readFile(volume: VolumeHandle, path: string): Promise<Uint8Array>;
  /** Writes files. */
  writeFiles(
    volume: VolumeHandle,
    files: Readonly<Record<string, string | Uint8Array>>,
  ): Promise<void>;
  /**
   * Extracts the volume (or `path` in it) into a host directory; with `policy`,
   * writes into version-control metadata or over the pipeline's own source files
   * are refused ({@link exportWriteCheck}), the destination itself included.
   */
  exportTo(
    volume: VolumeHandle,
    destination: string,
    path?: string,
    policy?: HostPathPolicy,
  ): Promise<void>;
}

async function* stripPrefix(
  stream: ReadableStream<Uint8Array>,
  prefix: string,
): AsyncGenerator<TarWriteEntry> {
  const base = prefix.slice(prefix.lastIndexOf("/") + 1);
  for await (const entry of readTar(stream)) {
    let path: string;
    if (entry.path === prefix) {
      if (entry.type === "directory") continue;
      path = base;
    } else if (entry.path.startsWith(prefix + "/")) {
      path = entry.path.slice(prefix.length + 1);
    } else {
      continue;
    }
    const { body: _body, bytes: _bytes, ...header } = entry;
    yield entry.type === "file"
      ? { ...header, path, body: await entry.bytes() }
      : { ...header, path };
  }
}

/** The volume file operations of `driver`. */
export function volumeArchives(driver: Driver): VolumeArchives {
  return {
    async seed(volume, hostDir, exclude) {
      const stream = await packDirectory(hostDir, { exclude });
      await driver.putArchive(volume, stream);
    },
    async readFiles(volume, paths) {
      const normalized = paths.map((path) => normalizeRelative(path));
      const entries = await listTar(await driver.getArchive(volume, normalized));
      const decoder = new TextDecoder();
      const files: Record<string, string> = {};
      for (const entry of entries) {
        if (entry.type === "file" && entry.content) {
          files[entry.path] = decoder.decode(entry.content);
        }
      }
      return files;
    },
    async readFile(volume, path) {
      const normalized = normalizeRelative(path);
      const entries = await listTar(await driver.getArchive(volume, [normalized]));
      const file = entries.find((entry) => entry.type === "file" && entry.path === normalized);
      if (file?.content === undefined) {
        throw new DriverError("not_found", `"${path}" is not a file in volume "${volume.name}"`);
      }
      return file.content;
    },
    async writeFiles(volume, files) {
      const entries: Record<string, string | { content: Uint8Array }> = {};
      for (const [path, content] of Object.entries(files)) {
        entries[normalizeRelative(path)] = typeof content === "string" ? content : { content };
      }
      await driver.putArchive(volume, tarFromFiles(entries));
    },
    async exportTo(volume, destination, path, policy) {
      const check = policy === undefined ? undefined : await exportWriteCheck(policy);
      const refused = check?.(await realPathOfExisting(normalizeAbsolute(destination)));
      if (refused !== undefined) throw new ArchivePathError("refused", destination, refused);
      const written: string[] = [];
      const refuse = check && ((real: string) => {
        written.push(real);
        return check(real);
      });
      if (path === undefined || normalizeRelative(path) === "") {
        await extractTar(await driver.getArchive(volume), destination, { refuse });
      } else {
        const prefix = normalizeRelative(path);
        const stream = await driver.getArchive(volume, [prefix]);
        await extractTar(createTarStream(stripPrefix(stream, prefix)), destination, { refuse });
      }
      if (policy !== undefined) await refuseEscapingModules(written, policy);
    },
  };
}

/** Names Deno loads as JavaScript or TypeScript: a JS/TS extension, or none at all. */
const MODULE_NAME = /(^|\/)[^/.]+$|\.[mc]?[jt]sx?$/;

/**
 * After an export, scans every module it wrote as the pipeline's imports are
 * scanned: pipeline code could `import()` it, and Deno would then read its static
 * imports unchecked (`import "/etc/shadow"` in an exported file would print a line
 * of the file). When one imports what a pipeline may not, every module the export
 * wrote is removed and the export rejects.
 */
async function refuseEscapingModules(
  written: readonly string[],
  policy: HostPathPolicy,
): Promise<void> {
  const modules: string[] = [];
  for (const file of new Set(written)) {
    if (!MODULE_NAME.test(file)) continue;
    if ((await Deno.lstat(file).catch(() => undefined))?.isFile) modules.push(file);
  }
  if (modules.length === 0) return;
  const { ImportRefusedError, scanImports } = await import("./import_scan.ts");
  try {
    await scanImports(modules[0], {
      moreEntries: modules.slice(1),
      baseDir: policy.baseDir,
      readRoots: policy.readRoots,
    });
  } catch (error) {
    if (!(error instanceof ImportRefusedError)) throw error;
    // Every module this export wrote goes: any of them could lead pipeline code to the refused one.
    for (const file of modules) await Deno.remove(file).catch(() => {});
    throw new ArchivePathError(
      "refused",
      error.importer,
      `exportTo removed the ${modules.length} module(s) it wrote, which pipeline code could import: ${error.message}`,
    );
  }
}
