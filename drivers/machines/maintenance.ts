/**
 * `pocketci gc` for the machine drivers: lists the namespace's machines and volumes at the
 * provider with the run they belong to (a busy machine: its run; a parked one only once it has
 * been idle longer than `idle_timeout`; a volume only while detached), and removes a machine
 * (with its Docker volume and host key), a volume, or the namespace key (only once no machine of
 * the pool is left). Anything already gone counts as removed.
 *
 * @module
 */

import type { DriverMaintenance, ResourceRecord } from "../contract.ts";
import { sshOptions } from "./connect.ts";
import {
  keyDir,
  keyTag,
  loadClientKey,
  loadHostKey,
  removeClientKey,
  removeHostKey,
} from "./keys.ts";
import { type MachineProvider, type PoolMachine, volumeName } from "./provider.ts";

/** What maintenance needs. */
export interface MaintenanceSettings {
  /** The state directory. */
  readonly stateDir: string;
  /** The namespace. */
  readonly namespace: string;
  /** `idle_timeout` in ms. */
  readonly idleTimeoutMs: number;
}

/** Maintenance access over a provider. */
export function machineMaintenance(
  provider: MachineProvider,
  settings: MaintenanceSettings,
): DriverMaintenance {
  const dir = keyDir(settings.stateDir, provider.driver, settings.namespace);
  const base = { driver: provider.driver, namespace: settings.namespace } as const;
  /**
   * Runs `action` with the docker maintenance of a parked machine's engine (its caches live
   * there); undefined when this host cannot reach it (no key, no host key, no address).
   */
  const onMachine = async <T>(
    machine: PoolMachine,
    action: (docker: DriverMaintenance) => Promise<T>,
  ): Promise<T | undefined> => {
    const [client, hostKey] = await Promise.all([
      loadClientKey(dir),
      loadHostKey(dir, machine.name),
    ]);
    if (!client || !hostKey || !machine.ip || machine.status !== "running") return undefined;
    const [{ openEngine }, { parseEngineHost }, { DockerMaintenance }] = await Promise.all([
      import("../docker/engine.ts"),
      import("../docker/engine_address.ts"),
      import("../docker/maintenance.ts"),
    ]);
    const engine = await openEngine(
      parseEngineHost(`ssh://root@${machine.ip}:22`, "the machine's address"),
      sshOptions({ ip: machine.ip, port: 22, clientKey: client.privateKey, hostKey }),
    );
    try {
      return await action(new DockerMaintenance(engine, settings.namespace));
    } finally {
      await engine.close();
    }
  };
  return {
    async listResources(): Promise<ResourceRecord[]> {
      const records: ResourceRecord[] = [];
      const pool = await provider.listPool();
      for (const machine of pool) {
        const expired = machine.idle && machine.idleSince !== undefined &&
          Date.now() - machine.idleSince > settings.idleTimeoutMs;
        records.push({
          ...base,
          kind: "machine",
          id: machine.name,
          // A parked machine belongs to no run until it expires; then to the run that parked it.
          runId: machine.idle ? (expired ? machine.runId ?? "expired" : undefined) : machine.runId,
          detail: {
            id: machine.id,
            state: machine.idle ? "idle" : machine.busy ? "busy" : machine.status,
          },
        });
      }
      for (const machine of pool) {
        if (!machine.idle) continue;
        const caches = await onMachine(
          machine,
          async (docker) => (await docker.listResources()).filter((r) => r.kind === "cache"),
        ).catch(() => undefined);
        for (const cache of caches ?? []) {
          records.push({
            ...cache,
            driver: provider.driver,
            detail: { ...cache.detail, machine: machine.name },
          });
        }
      }
      for (const volume of await provider.listVolumes()) {
        records.push({
          ...base,
          kind: "volume",
          id: volume.name,
          runId: volume.attachedTo.length > 0 ? undefined : volume.runId,
          detail: { id: volume.id },
        });
      }
      return records;
    },
    async cacheSizes(caches: readonly ResourceRecord[]): Promise<ReadonlyMap<string, number>> {
      const sizes = new Map<string, number>();
      const byMachine = Map.groupBy(caches, (c) => c.detail?.machine ?? "");
      for (const [name, group] of byMachine) {
        const machine = name ? await provider.findMachine(name) : undefined;
        if (!machine) continue;
        const measured = await onMachine(
          machine,
          (docker) => docker.cacheSizes!(group.map((c) => ({ ...c, driver: "docker" }))),
        ).catch(() => undefined);
        for (const [id, size] of measured ?? []) sizes.set(id, size);
      }
      return sizes;
    },
    async removeResource(resource: ResourceRecord): Promise<void> {
      if (resource.kind === "cache") {
        const machine = resource.detail?.machine
          ? await provider.findMachine(resource.detail.machine)
          : undefined;
        if (!machine) return; // gone with its machine
        await onMachine(
          machine,
          (docker) => docker.removeResource({ ...resource, driver: "docker" }),
        );
      } else if (resource.kind === "machine") {
        const machine = await provider.findMachine(resource.id);
        if (machine) await provider.deleteMachine(machine.id);
        const volume = await provider.findVolume(volumeName(resource.id));
        if (volume) await provider.deleteVolume(volume.id);
        await removeHostKey(dir, resource.id);
      } else if (resource.kind === "volume") {
        const volume = await provider.findVolume(resource.id);
        if (!volume) return;
        // Still attached to the machine it was made for (gc removes newest first): that machine
        // goes first, or the provider refuses to delete an attached volume.
        const owner = await provider.findMachine(resource.id.replace(/-docker$/, ""));
        if (owner && volume.attachedTo.includes(owner.id)) {
          await provider.deleteMachine(owner.id);
          await removeHostKey(dir, owner.name);
        }
        await provider.deleteVolume(volume.id);
      } else if (resource.kind === "key") {
        // The namespace key stays while any machine of the pool may still need it.
        if ((await provider.listPool()).length > 0) return;
        const key = await provider.findKey(resource.id);
        if (key) await provider.deleteKey(key.id);
        const local = await loadClientKey(dir);
        if (local && resource.id.endsWith(`-${keyTag(local.publicKey)}`)) {
          await removeClientKey(dir);
        }
      }
    },
  };
}
