/**
 * The driver the DigitalOcean and Hetzner entries create: a machine is provisioned lazily (on the
 * first task, volume, cache or sandbox), sized from the largest limits known at that moment with
 * `size=auto` / `server_type=auto`, and every container operation is delegated to the docker
 * driver talking to the machine's engine over SSH. A task asking for more CPU or memory than the
 * machine has fails with an error naming the size parameter. `close()` closes the docker driver
 * (removing the run's containers and volumes there) and then parks or deletes the machine.
 *
 * @module
 */

import {
  type CacheEntry,
  type CleanupReport,
  type Driver,
  type DriverCapabilities,
  DriverError,
  type OutputSink,
  type SandboxHandle,
  type TaskHandle,
  type TaskSpec,
  type VolumeHandle,
  type VolumeSpec,
} from "../contract.ts";
import { DOCKER_CAPABILITIES } from "../docker/capabilities.ts";
import { DockerDriver } from "../docker/driver.ts";
import type { Demand, Lease, MachinePool } from "./pool.ts";
import { capacityOf } from "./sizing.ts";

const NO_DEMAND: Demand = { cpu: 0, memoryBytes: 0 };

function gb(bytes: number): string {
  return `${Math.round((bytes / 1024 ** 3) * 10) / 10} GiB`;
}

/** A run's driver on a pool machine. */
export class MachineDriver implements Driver {
  /** `digitalocean` or `hetzner`. */
  readonly name: "digitalocean" | "hetzner";
  /** What the docker driver on the machine honours. */
  readonly capabilities: DriverCapabilities = DOCKER_CAPABILITIES;
  readonly #pool: MachinePool;
  readonly #sizeParam: string;
  #hint: Demand;
  #lease: Promise<Lease> | undefined;
  #closed = false;

  /** Creates the driver; `hint` sizes the machine up front (a pipeline's resources). */
  constructor(
    name: "digitalocean" | "hetzner",
    pool: MachinePool,
    sizeParam: string,
    hint: Demand = NO_DEMAND,
  ) {
    this.name = name;
    this.#pool = pool;
    this.#sizeParam = sizeParam;
    this.#hint = hint;
  }

  /** Sizes the machine up front from the pipeline's hint (no effect once it is provisioned). */
  sizeHint(hint: Demand): void {
    this.#hint = {
      cpu: Math.max(this.#hint.cpu, hint.cpu),
      memoryBytes: Math.max(this.#hint.memoryBytes, hint.memoryBytes),
    };
  }

  /** The machine, provisioned on first use. */
  machine(demand: Demand = NO_DEMAND): Promise<Lease> {
    if (this.#closed) {
      return Promise.reject(new DriverError("failed", `${this.name}: the driver is closed`));
    }
    if (!this.#lease) {
      const wanted = {
        cpu: Math.max(this.#hint.cpu, demand.cpu),
        memoryBytes: Math.max(this.#hint.memoryBytes, demand.memoryBytes),
      };
      const lease = this.#pool.acquire(wanted);
      this.#lease = lease;
      // A failed provisioning is not cached: the next operation tries again.
      lease.catch(() => {
        if (this.#lease === lease) this.#lease = undefined;
      });
    }
    return this.#lease;
  }

  #check(spec: TaskSpec, lease: Lease): void {
    const capacity = lease.size ? capacityOf(lease.size) : undefined;
    const cpu = spec.limits?.cpu ?? 0;
    const memory = spec.limits?.memoryBytes ?? 0;
    if (!capacity || (cpu <= capacity.cpu && memory <= capacity.memoryBytes)) return;
    throw new DriverError(
      "invalid",
      `${this.name}: task "${spec.name}" asks for ${cpu} CPUs and ${
        gb(memory)
      }, more than the machine has (${this.#sizeParam}=${lease.size}: ${capacity.cpu} CPUs, ${
        gb(capacity.memoryBytes)
      }); choose a larger ${this.#sizeParam}= or ${this.#sizeParam}=auto`,
    );
  }

  async startTask(spec: TaskSpec, output: OutputSink): Promise<TaskHandle> {
    const lease = await this.machine({
      cpu: spec.limits?.cpu ?? 0,
      memoryBytes: spec.limits?.memoryBytes ?? 0,
    });
    this.#check(spec, lease);
    return await lease.docker.startTask(spec, output);
  }

  async attachTask(id: string, output: OutputSink): Promise<TaskHandle | undefined> {
    if (!this.#lease) return undefined;
    return await (await this.#lease).docker.attachTask(id, output);
  }

  async createVolume(spec: VolumeSpec): Promise<VolumeHandle> {
    return await (await this.machine()).docker.createVolume(spec);
  }

  async listCaches(name: string): Promise<CacheEntry[]> {
    return await (await this.machine()).docker.listCaches(name);
  }

  async removeVolume(volume: VolumeHandle): Promise<void> {
    await (await this.machine()).docker.removeVolume(volume);
  }

  async putArchive(
    volume: VolumeHandle,
    tar: ReadableStream<Uint8Array>,
    path?: string,
  ): Promise<void> {
    await (await this.machine()).docker.putArchive(volume, tar, path);
  }

  async getArchive(
    volume: VolumeHandle,
    paths?: readonly string[],
  ): Promise<ReadableStream<Uint8Array>> {
    return await (await this.machine()).docker.getArchive(volume, paths);
  }

  async startSandbox(spec: TaskSpec): Promise<SandboxHandle> {
    const lease = await this.machine({
      cpu: spec.limits?.cpu ?? 0,
      memoryBytes: spec.limits?.memoryBytes ?? 0,
    });
    this.#check(spec, lease);
    return await lease.docker.startSandbox(spec);
  }

  async close(): Promise<CleanupReport> {
    this.#closed = true;
    const pending = this.#lease;
    this.#lease = undefined;
    const lease = await pending?.catch(() => undefined);
    if (!lease) {
      // Provisioning failed or never happened: the namespace key goes once no machine needs it.
      await this.#pool.removeKeyIfUnused().catch(() => {});
      return { removed: [], failed: [] };
    }
    const report = await lease.docker.close();
    try {
      await this.#pool.release(lease);
      return report;
    } catch (error) {
      return {
        removed: report.removed,
        failed: [...report.failed, {
          resource: { kind: "machine", id: lease.machine.name, driver: this.name },
          reason: `${
            (error instanceof Error ? error.message : String(error)).split("\n")[0]
          }; pocketci gc --driver=${this.name} removes it`,
        }],
      };
    }
  }
}

/**
 * Wraps the driver so operations the docker driver gains later (services ...) are delegated to the
 * machine's docker driver too, provisioning it first.
 */
export function forwardingDriver(driver: MachineDriver): Driver {
  return new Proxy(driver, {
    get(target, property, receiver) {
      if (property in target) {
        const value = Reflect.get(target, property, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      }
      const inner = (DockerDriver.prototype as unknown as Record<PropertyKey, unknown>)[property];
      if (typeof inner !== "function") return undefined;
      return async (...args: unknown[]) => {
        const lease = await target.machine();
        const method =
          (lease.docker as unknown as Record<PropertyKey, (...a: unknown[]) => unknown>)[
            property
          ];
        return await method.apply(lease.docker, args);
      };
    },
  });
}
