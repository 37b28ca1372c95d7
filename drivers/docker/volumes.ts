/**
 * Volumes and caches as Docker named volumes, and moving files in and out of them with the
 * archive API on a created-but-never-started helper container per volume (from the driver's own
 * empty image), so no runnable image is needed.
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import type Docker from "dockerode";
import { posix } from "node:path";
import { Readable } from "node:stream";
import { type CacheEntry, DriverError, type VolumeHandle, type VolumeSpec } from "../contract.ts";
import { ensureHelperImage, HELPER_IMAGE } from "./helper_image.ts";
import { LABEL, labelsFor, resourceName } from "./labels.ts";
import { directoriesTar, generatorStream, renameEntries, tarEnd } from "./tar.ts";
import type { ResourceTracker } from "./tracker.ts";

const MOUNT = "/v";

/** Normalizes a path inside a volume; `""` is the root. Escaping the root is an error. */
export function volumePath(path: string, volume: string): string {
  const normalized = posix.normalize(`/${path}`).replace(/\/+$/, "");
  if (normalized.split("/").includes("..")) {
    throw new DriverError("invalid", `path ${JSON.stringify(path)} escapes volume ${volume}`);
  }
  return normalized.replace(/^\/+/, "");
}

function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number }).statusCode;
}

/** Creates, fills, reads and removes the volumes of one run. */
export class VolumeStore {
  readonly #docker: Docker;
  readonly #tracker: ResourceTracker;
  readonly #helpers = new Map<string, Promise<Docker.Container>>();
  /** Caches opened by this run, by Docker volume name, so concurrent opens share one. */
  readonly #caches = new Map<string, Promise<VolumeHandle>>();

  /** Creates a store bound to one engine and run. */
  constructor(docker: Docker, tracker: ResourceTracker) {
    this.#docker = docker;
    this.#tracker = tracker;
  }

  /**
   * The Docker volume name for a logical volume or cache. A keyed cache's name holds an `@`
   * (replaced, so the name carries a hash of the original), which no unkeyed name can.
   */
  volumeName(spec: VolumeSpec): string {
    const { namespace, runId } = this.#tracker;
    if (spec.kind === "volume") return resourceName("pocketci", namespace, runId, "vol", spec.name);
    const logical = spec.key === undefined ? spec.name : `${spec.name}@${spec.key}`;
    return resourceName("pocketci", namespace, "cache", logical);
  }

  /**
   * Creates a volume, or opens the existing one with that name (idempotent). A cache that
   * does not exist yet is filled from `spec.seed` (another cache of the namespace, read
   * through its helper container) before this resolves; a failed copy removes it again.
   */
  create(spec: VolumeSpec): Promise<VolumeHandle> {
    if (!spec.name) throw new DriverError("invalid", "a volume needs a name");
    if (spec.kind === "volume") return this.#create(spec);
    const name = this.volumeName(spec);
    const pending = this.#caches.get(name);
    if (pending !== undefined) return pending.then((handle) => ({ ...handle, opened: "existing" }));
    const opening = this.#openCache(spec);
    this.#caches.set(name, opening);
    opening.catch(() => this.#caches.delete(name));
    return opening;
  }

  async #create(spec: VolumeSpec): Promise<VolumeHandle> {
    const name = this.volumeName(spec);
    const { namespace, runId } = this.#tracker;
    await this.#docker.createVolume({
      Name: name,
      Labels: labelsFor(namespace, runId, spec.kind, { name: spec.name, key: spec.key }),
    });
    await this.#tracker.record(spec.kind, name, { name: spec.name });
    const key = spec.key === undefined ? {} : { key: spec.key };
    return { name: spec.name, kind: spec.kind, id: name, ...key };
  }

  async #openCache(spec: VolumeSpec): Promise<VolumeHandle> {
    const existed = await this.#exists(this.volumeName(spec));
    if (existed || spec.seed === undefined) {
      return { ...await this.#create(spec), opened: existed ? "existing" : "created" };
    }
    await this.#checkSeed(spec.seed);
    const handle = await this.#create(spec);
    try {
      await this.putArchive(handle, await this.getArchive(spec.seed));
    } catch (error) {
      await this.removeHelpers([handle.id]).catch(() => {});
      await this.#docker.getVolume(handle.id).remove({ force: true }).catch(() => {});
      await this.#tracker.forget("cache", handle.id).catch(() => {});
      throw error;
    }
    return { ...handle, opened: "seeded" };
  }

  async #exists(name: string): Promise<boolean> {
    try {
      await this.#docker.getVolume(name).inspect();
      return true;
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw error;
    }
  }

  /** A seed must be a cache of this namespace (by its labels), never any other volume. */
  async #checkSeed(seed: VolumeHandle): Promise<void> {
    const labels = seed.kind === "cache"
      ? (await this.#docker.getVolume(seed.id).inspect().catch(() => undefined))?.Labels
      : undefined;
    if (
      labels?.[LABEL.namespace] !== this.#tracker.namespace || labels?.[LABEL.kind] !== "cache"
    ) {
      throw new DriverError(
        "invalid",
        `cannot seed a cache from ${seed.id}: it is not a cache of namespace ${this.#tracker.namespace}`,
      );
    }
  }

  /** Every cache of the namespace named `name` (all keys), found by their labels. */
  async listCaches(name: string): Promise<CacheEntry[]> {
    const { Volumes } = await this.#docker.listVolumes({
      filters: {
        label: [
          `${LABEL.managed}=true`,
          `${LABEL.namespace}=${this.#tracker.namespace}`,
          `${LABEL.kind}=cache`,
          `${LABEL.name}=${name}`,
        ],
      },
    });
    return (Volumes ?? []).map((volume) => {
      const key = volume.Labels?.[LABEL.key];
      const created = (volume as { CreatedAt?: string }).CreatedAt;
      const date = created === undefined ? undefined : new Date(created);
      return {
        handle: {
          name,
          kind: "cache" as const,
          id: volume.Name,
          ...(key === undefined ? {} : { key }),
        },
        ...(date === undefined || Number.isNaN(date.getTime())
          ? {}
          : { lastUsedAt: date.toISOString() }),
      };
    });
  }

  /** The helper container that mounts `volume` at /v (created once, never started). */
  #helper(volume: VolumeHandle): Promise<Docker.Container> {
    let helper = this.#helpers.get(volume.id);
    if (!helper) {
      helper = (async () => {
        await ensureHelperImage(this.#docker);
        const { namespace, runId } = this.#tracker;
        const container = await this.#docker.createContainer({
          name: resourceName("pocketci", namespace, runId, "helper", volume.id),
          Image: HELPER_IMAGE,
          Cmd: ["/pocketci-helper-never-runs"],
          Labels: labelsFor(namespace, runId, "helper", { name: volume.id }),
          HostConfig: {
            NetworkMode: "none",
            Mounts: [{ Type: "volume", Source: volume.id, Target: MOUNT }],
          },
        });
        await this.#tracker.record("container", container.id, { name: volume.id, role: "helper" });
        return container;
      })();
      this.#helpers.set(volume.id, helper);
      helper.catch(() => this.#helpers.delete(volume.id));
    }
    return helper;
  }

  /** Extracts a tar stream into the volume under `path`, creating the directories on the way. */
  async putArchive(
    volume: VolumeHandle,
    tar: ReadableStream<Uint8Array>,
    path?: string,
  ): Promise<void> {
    const sub = volumePath(path ?? "", volume.name);
    const helper = await this.#helper(volume);
    try {
      if (sub !== "") {
        const parts = sub.split("/");
        const dirs = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
        await helper.putArchive(Readable.from([directoriesTar(dirs)]) as never, { path: MOUNT });
      }
      await helper.putArchive(Readable.fromWeb(tar as never) as never, {
        path: sub ? `${MOUNT}/${sub}` : MOUNT,
      });
    } catch (error) {
      throw new DriverError(
        "failed",
        `cannot write into volume ${volume.name}: ${firstLine(error)}`,
        { cause: error },
      );
    }
  }

  /** A tar of the whole volume, or of `paths` (named relative to the volume root). */
  async getArchive(
    volume: VolumeHandle,
    paths?: readonly string[],
  ): Promise<ReadableStream<Uint8Array>> {
    const helper = await this.#helper(volume);
    const wanted = paths === undefined || paths.length === 0
      ? [""]
      : paths.map((p) => volumePath(p, volume.name));
    for (const p of wanted) {
      if (p === "") continue;
      try {
        await helper.infoArchive({ path: `${MOUNT}/${p}` });
      } catch (error) {
        if (statusOf(error) === 404) {
          throw new DriverError("not_found", `${p} does not exist in volume ${volume.name}`);
        }
        throw new DriverError("failed", `cannot read volume ${volume.name}: ${firstLine(error)}`, {
          cause: error,
        });
      }
    }
    async function* all(): AsyncGenerator<Uint8Array> {
      for (const p of wanted) {
        const source = p === "" ? `${MOUNT}/.` : `${MOUNT}/${p}`;
        const node = await helper.getArchive({ path: source }) as unknown as Readable;
        const stream = Readable.toWeb(node) as unknown as ReadableStream<Uint8Array>;
        const parent = p === "" ? "" : posix.dirname(p);
        yield* renameEntries(stream, (name) => {
          const bare = name.replace(/^\.\//, "").replace(/^\.$/, "");
          if (bare === "") return null;
          return parent === "" || parent === "." ? bare : `${parent}/${bare}`;
        });
      }
      yield tarEnd();
    }
    return generatorStream(all());
  }

  /** Removes the helper containers of the given volume IDs (all when omitted). */
  async removeHelpers(ids?: readonly string[]): Promise<void> {
    const targets = ids ?? [...this.#helpers.keys()];
    await Promise.all(targets.map(async (id) => {
      const helper = this.#helpers.get(id);
      if (!helper) return;
      this.#helpers.delete(id);
      const container = await helper.catch(() => undefined);
      if (!container) return;
      try {
        await container.remove({ force: true });
      } catch (error) {
        if (statusOf(error) !== 404) throw error;
      }
      await this.#tracker.forget("container", container.id);
    }));
  }

  /** Removes a run-scoped volume (and its helper). Caches are left alone. */
  async remove(volume: VolumeHandle): Promise<void> {
    if (volume.kind === "cache") return;
    await this.removeHelpers([volume.id]);
    try {
      await this.#docker.getVolume(volume.id).remove({ force: true });
    } catch (error) {
      if (statusOf(error) !== 404) {
        throw new DriverError("failed", `cannot remove volume ${volume.id}: ${firstLine(error)}`, {
          cause: error,
        });
      }
    }
    await this.#tracker.forget("volume", volume.id);
  }
}

/** The first line of an engine error's message. */
export function firstLine(error: unknown): string {
  const e = error as { json?: { message?: string }; message?: string };
  return (e.json?.message ?? e.message ?? String(error)).split("\n")[0].replace(
    /^\(HTTP code \d+\)\s*[\w ]*-\s*/,
    "",
  ).trim();
}

/** The label that marks a volume's logical name (re-exported for maintenance). */
export const VOLUME_NAME_LABEL: string = LABEL.name;
