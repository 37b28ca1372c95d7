/**
 * The vz driver's settings, read from a resolved DSN configuration (`dsn/schemas.ts`).
 *
 * @module
 */

/** Typed settings of one vz driver. */
export interface VzConfig {
  /** VM memory in MiB. */
  readonly memory: number;
  /** vCPUs. */
  readonly cpus: number;
  /** Where converted images and the guest's Deno are cached. */
  readonly cacheDir: string;
  /** A base image (raw, or anything qemu-img converts); absent: the Ubuntu cloud image. */
  readonly image?: string;
}

/** Reads a resolved configuration; absent values take the spec's defaults. */
export function vzConfig(config: Readonly<Record<string, unknown>>, home?: string): VzConfig {
  // The DSN default is `~/.cache/ci/vz`: `~` is the home directory.
  const expand = (path: string) =>
    home !== undefined && (path === "~" || path.startsWith("~/")) ? home + path.slice(1) : path;
  const image = typeof config.image === "string" && config.image !== ""
    ? expand(config.image)
    : undefined;
  const cacheDir = typeof config.cache_dir === "string" && config.cache_dir !== ""
    ? expand(config.cache_dir)
    : `${home ?? "/tmp"}/.cache/ci/vz`;
  return {
    memory: typeof config.memory === "number" ? config.memory : 2048,
    cpus: typeof config.cpus === "number" ? config.cpus : 2,
    cacheDir,
    ...(image === undefined ? {} : { image }),
  };
}
