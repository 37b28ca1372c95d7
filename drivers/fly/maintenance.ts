/**
 * `pocketci gc` for Fly: the namespace's machines (by metadata), run volumes and caches (by name
 * prefix) in the configured app, or in the namespace's ephemeral app, which is listed itself.
 *
 * @module
 */

import type { DriverMaintenance, ResourceRecord } from "../contract.ts";
import type { FlyApi } from "./api.ts";
import { cachePrefix, runVolumePrefix, VolumeHelper } from "./volumes.ts";
import { readCacheIndex } from "./cache_index.ts";

/** Maintenance over one app. */
export class FlyMaintenance implements DriverMaintenance {
  readonly #api: FlyApi;
  readonly #app: string;
  readonly #ephemeral: boolean;
  readonly #namespace: string;
  readonly #stateDir: string;

  /** Binds to an app and a namespace (`stateDir` holds the cache index). */
  constructor(api: FlyApi, app: string, ephemeral: boolean, namespace: string, stateDir: string) {
    this.#api = api;
    this.#app = app;
    this.#ephemeral = ephemeral;
    this.#namespace = namespace;
    this.#stateDir = stateDir;
  }

  /** Machines, volumes, caches (and the ephemeral app) of the namespace. */
  async listResources(): Promise<ResourceRecord[]> {
    if (!await this.#api.appExists(this.#app)) return [];
    const base = { driver: "fly" as const, namespace: this.#namespace };
    const out: ResourceRecord[] = [];
    const machines = await this.#api.listMachines(this.#app, {
      pocketci_namespace: this.#namespace,
    });
    for (const machine of machines) {
      if (machine.state === "destroyed") continue;
      out.push({
        ...base,
        kind: "machine",
        id: machine.id,
        runId: machine.config?.metadata?.pocketci_run,
        createdAt: machine.created_at,
        detail: { app: this.#app },
      });
    }
    const index = await readCacheIndex(this.#stateDir);
    for (const volume of await this.#api.listVolumes(this.#app)) {
      const kind = volume.name.startsWith(cachePrefix(this.#namespace))
        ? "cache"
        : volume.name.startsWith(runVolumePrefix(this.#namespace))
        ? "volume"
        : undefined;
      if (kind === undefined) continue;
      out.push({
        ...base,
        kind,
        id: volume.id,
        createdAt: volume.created_at,
        detail: {
          app: this.#app,
          volume: volume.name,
          region: volume.region,
          ...(kind === "cache" && index[volume.name]
            ? {
              name: index[volume.name].name,
              ...(index[volume.name].key === undefined ? {} : { key: index[volume.name].key! }),
            }
            : {}),
        },
      });
    }
    if (this.#ephemeral) {
      const runs = new Set(out.map((r) => r.runId).filter((r) => r !== undefined));
      out.push({
        ...base,
        kind: "app",
        id: this.#app,
        ...(runs.size === 1 ? { runId: [...runs][0] } : {}),
        detail: { app: this.#app },
      });
    }
    return out;
  }

  /**
   * The bytes of file contents in each cache, counted by a helper machine that mounts it
   * (`find -type f -exec cat | wc -c`); a cache that cannot be measured is left out.
   */
  async cacheSizes(caches: readonly ResourceRecord[]): Promise<ReadonlyMap<string, number>> {
    const sizes = new Map<string, number>();
    for (const cache of caches) {
      const app = cache.detail?.app ?? this.#app;
      let helper: VolumeHelper | undefined;
      try {
        helper = await VolumeHelper.start(
          this.#api,
          app,
          `ci-gc-size-${cache.id.replace(/[^a-z0-9]+/g, "-")}`.slice(0, 63),
          cache.id,
          cache.detail?.region ?? "iad",
          { pocketci_namespace: this.#namespace, pocketci_task: "cache-size" },
        );
        const text = await helper.run(
          ["sh", "-c", "find /v -type f -exec cat {} + | wc -c"],
          `measuring cache ${cache.id}`,
        );
        const size = Number(text.trim());
        if (Number.isFinite(size)) sizes.set(cache.id, size);
      } catch {
        // Left out: gc --cache-max then cannot count it.
      } finally {
        await helper?.destroy().catch(() => {});
      }
    }
    return sizes;
  }

  /** Removes one resource (a machine by ID or by its recorded name). */
  async removeResource(resource: ResourceRecord): Promise<void> {
    const app = resource.detail?.app ?? this.#app;
    if (resource.kind === "app") return await this.#api.deleteApp(resource.id);
    if (resource.kind === "volume" || resource.kind === "cache") {
      // A killed run's machine may still hold the volume: it goes first.
      const volume = (await this.#api.listVolumes(app).catch(() => []))
        .find((v) => v.id === resource.id || v.name === resource.id);
      if (volume === undefined) return;
      if (volume.attached_machine_id) await this.#api.destroy(app, volume.attached_machine_id);
      await this.#api.deleteVolume(app, volume.id);
      return;
    }
    if (resource.kind === "machine") {
      const machines = await this.#api.listMachines(app).catch(() => []);
      const machine = machines.find((m) => m.id === resource.id || m.name === resource.id);
      if (machine) await this.#api.destroy(app, machine.id);
    }
  }
}
