/**
 * The worker pool of one namespace, shared by DigitalOcean and Hetzner, and each machine's
 * lifecycle: create → running → SSH reachable → Docker ready, every stage timed and reported,
 * with the deadline of the parameter that bounds it; a machine that misses one is deleted.
 *
 * Pool rules: an idle (parked) machine is claimed before anything is created; every machine of
 * the namespace counts toward `max_workers` (creating, running, idle, in error); at the limit the
 * run waits, polling every `poll_interval` (slower when the API budget runs low) up to
 * `wait_timeout` (0: no limit). A claim writes the run's marker, re-reads the machine and backs
 * off when another marker, or a busy mark, is there; a create is followed by a re-count, and a
 * machine created beyond `max_workers` by a concurrent run is deleted again (the newer one backs
 * off). Leak-proofing: every machine, volume and key is recorded in the run's journal under the
 * name it will have before the API call; a create whose answer is lost is looked up by name,
 * never repeated blindly; an abort during provisioning deletes what exists; the first acquire of
 * a run reconciles the namespace (machines busy for a dead run of this host, idle machines past
 * `idle_timeout`, unattached volumes of dead runs are deleted).
 *
 * @module
 */

import { type DriverContext, DriverError, type ResourceRecord } from "../contract.ts";
import type { DockerDriver } from "../docker/driver.ts";
import { describeDuration } from "../../dsn/duration.ts";
import { isProcessAlive, parseJournal } from "../../runner/state.ts";
import { sleep } from "../timers.ts";
import { ApiError } from "./api_client.ts";
import { buildUserData } from "./cloud_init.ts";
import { type MachineAddress, StageTimeout, waitForDocker, waitForSsh } from "./connect.ts";
import {
  createClientKey,
  generateKeyPair,
  keyDir,
  type KeyPair,
  keyTag,
  loadClientKey,
  loadHostKey,
  removeClientKey,
  removeHostKey,
  saveHostKey,
} from "./keys.ts";
import {
  keyName,
  machineName,
  type MachineProvider,
  type PoolMachine,
  type ProviderVolume,
  volumeName,
} from "./provider.ts";

/** The pool's settings, from the driver's configuration. */
export interface PoolSettings {
  /** Machine image. */
  readonly image: string;
  /** Size slug / server type, or `auto`. */
  readonly size: string;
  /** Picks the size for `auto` from the demand. */
  readonly autoSize: (demand: { cpu: number; memoryBytes: number }) => string;
  /** Region / location. */
  readonly region: string;
  /** GB of the Docker data volume. */
  readonly diskSizeGb: number;
  /** `max_workers`. */
  readonly maxWorkers: number;
  /** `reuse_worker`. */
  readonly reuseWorker: boolean;
  /** `poll_interval` in ms. */
  readonly pollIntervalMs: number;
  /** `wait_timeout` in ms (0: no limit). */
  readonly waitTimeoutMs: number;
  /** `ssh_timeout` in ms (also bounds create → running). */
  readonly sshTimeoutMs: number;
  /** `docker_timeout` in ms. */
  readonly dockerTimeoutMs: number;
  /** `idle_timeout` in ms. */
  readonly idleTimeoutMs: number;
  /** SSH port (22). */
  readonly sshPort: number;
  /** Wait between re-reads of a claimed machine (Hetzner's label writes replace each other). */
  readonly claimSettleMs: number;
  /** First delay when polling a new machine's status (default 1 s, growing to 5 s). */
  readonly statusPollMs?: number;
  /** Delay between SSH and Docker attempts (default 1 s). */
  readonly connectRetryMs?: number;
}

/** A machine held by the run, with the docker driver that runs on it. */
export interface Lease {
  /** The machine. */
  readonly machine: PoolMachine;
  /** The size it was created with (auto resolved), when known. */
  readonly size?: string;
  /** The docker driver bound to the machine's engine. */
  readonly docker: DockerDriver;
}

/** Who the pool reports to. */
export interface PoolHooks {
  /** A progress line (stages, waits, reconciliation). */
  readonly progress: (line: string) => void;
}

/** The CPU and memory a machine must hold. */
export interface Demand {
  /** Cores. */
  readonly cpu: number;
  /** Bytes. */
  readonly memoryBytes: number;
}

function oneLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}

function since(start: number): string {
  return describeDuration(Date.now() - start);
}

/** Whether a run of this host is known dead (its journal exists and its process is gone). */
export async function runIsDead(stateDir: string, runId: string): Promise<boolean> {
  if (!/^[A-Za-z0-9_-]+$/.test(runId)) return false;
  const path = `${stateDir}/runs/${runId}.jsonl`;
  try {
    const header = parseJournal(path, await Deno.readTextFile(path)).header;
    return header !== undefined && !(await isProcessAlive(header.process));
  } catch {
    return false;
  }
}

/** The pool of one namespace for one run. */
export class MachinePool {
  readonly #provider: MachineProvider;
  readonly #settings: PoolSettings;
  readonly #context: DriverContext;
  readonly #inner: DriverContext;
  readonly #hooks: PoolHooks;
  readonly #dir: string;
  readonly #noun: string;
  #key: { pair: KeyPair; id: string; tag: string; name: string } | undefined;
  #local: { pair: KeyPair; tag: string } | undefined;
  #reconciled = false;
  #index = 0;
  readonly #reported = new Set<string>();

  /** Creates the pool; nothing is called until {@link acquire}. */
  constructor(
    provider: MachineProvider,
    settings: PoolSettings,
    context: DriverContext,
    hooks: PoolHooks,
  ) {
    this.#provider = provider;
    this.#settings = settings;
    this.#context = context;
    this.#hooks = hooks;
    this.#noun = provider.driver === "digitalocean" ? "droplet" : "server";
    this.#dir = keyDir(context.stateDir, provider.driver, context.namespace);
    // The docker driver on a machine records nothing in the journal: what it creates lives on
    // the machine and goes with it.
    this.#inner = {
      ...context,
      record: () => Promise.resolve(),
      forget: () => Promise.resolve(),
    };
  }

  get #name(): string {
    return this.#provider.driver;
  }

  #record(
    kind: ResourceRecord["kind"],
    id: string,
    detail?: Record<string, string>,
  ): ResourceRecord {
    return {
      kind,
      id,
      driver: this.#provider.driver,
      runId: this.#context.runId,
      namespace: this.#context.namespace,
      createdAt: new Date().toISOString(),
      detail,
    };
  }

  #reportOnce(line: string): void {
    if (this.#reported.has(line)) return;
    this.#reported.add(line);
    this.#hooks.progress(line);
  }

  /** The namespace's client key pair on this host (created when missing). */
  async #localKey(): Promise<{ pair: KeyPair; tag: string }> {
    if (!this.#local) {
      const pair = (await loadClientKey(this.#dir)) ??
        (await createClientKey(this.#dir, `pocketci-${this.#context.namespace}`));
      this.#local = { pair, tag: keyTag(pair.publicKey) };
    }
    return this.#local;
  }

  /** The namespace's client key: this host's file, registered at the provider. */
  async #ensureKey(): Promise<{ pair: KeyPair; id: string; tag: string; name: string }> {
    if (this.#key) return this.#key;
    const { pair, tag } = await this.#localKey();
    // The name carries the key's fingerprint: hosts sharing an account and a namespace each
    // register their own key and never delete one another's.
    const name = `${keyName(this.#context.namespace)}-${tag}`;
    let remote = await this.#provider.findKey(name);
    if (!remote) {
      const record = this.#record("key", name);
      await this.#context.record(record);
      try {
        remote = await this.#provider.createKey(name, pair.publicKey);
      } catch (error) {
        // Lost answer or a concurrent run registered it first: look it up before giving up.
        remote = await this.#provider.findKey(name);
        if (!remote) throw this.#apiFailure("register the SSH key", error);
      }
      if (this.#settings.reuseWorker) await this.#context.forget(record);
    }
    this.#key = { pair, id: remote.id, tag, name };
    return this.#key;
  }

  #apiFailure(what: string, error: unknown): DriverError {
    if (error instanceof DriverError) return error;
    const code = error instanceof ApiError && [400, 422].includes(error.status)
      ? "invalid"
      : "unavailable";
    return new DriverError(code, `${this.#name}: cannot ${what}: ${oneLine(error)}`);
  }

  /**
   * Deletes what dead runs of this host and expired parked machines left in the namespace; returns
   * the pool without them. (Volumes a dead run left unattached are `gc`'s: it reads the journals.)
   */
  async #reconcile(pool: PoolMachine[]): Promise<PoolMachine[]> {
    if (this.#reconciled) return pool;
    this.#reconciled = true;
    const kept: PoolMachine[] = [];
    for (const machine of pool) {
      let why: string | undefined;
      if (
        machine.idle && machine.idleSince !== undefined &&
        Date.now() - machine.idleSince > this.#settings.idleTimeoutMs
      ) {
        why = `idle for ${since(machine.idleSince)} (idle_timeout=${
          describeDuration(this.#settings.idleTimeoutMs)
        })`;
      } else if (
        !machine.idle && machine.runId && machine.runId !== this.#context.runId &&
        await runIsDead(this.#context.stateDir, machine.runId)
      ) {
        why = `busy for run ${machine.runId}, which died`;
      }
      if (!why) {
        kept.push(machine);
        continue;
      }
      this.#hooks.progress(`${this.#name}: deleting ${this.#noun} ${machine.name}: ${why}`);
      await this.#destroy(machine, undefined);
    }
    return kept;
  }

  /** The size a new machine gets for this demand. */
  sizeFor(demand: Demand): string {
    return this.#settings.size === "auto" ? this.#settings.autoSize(demand) : this.#settings.size;
  }

  /**
   * A machine for the run: an idle one claimed, else a new one when the pool has room, else
   * waits for either. Rejects with a one-line error naming the parameter to raise.
   */
  async acquire(demand: Demand): Promise<Lease> {
    const signal = this.#context.signal;
    try {
      const { tag } = await this.#localKey();
      const started = Date.now();
      const deadline = this.#settings.waitTimeoutMs === 0
        ? Infinity
        : started + this.#settings.waitTimeoutMs;
      let lastLine = 0;
      let keyRetried = false;
      while (true) {
        signal?.throwIfAborted();
        const pool = await this.#reconcile(await this.#provider.listPool());
        const claimed = await this.#claimIdle(pool, tag);
        // Re-read the pool (the machine may be free again), within wait_timeout like any wait.
        if (claimed === "lost" && Date.now() < deadline) continue;
        if (claimed && claimed !== "lost") return claimed;
        if (claimed !== "lost" && pool.length < this.#settings.maxWorkers) {
          // Another run of the namespace may have deleted the key with its last machine: look it
          // up again before each create (creates are rare), and once more if the create says so.
          this.#key = undefined;
          let created: Lease | undefined;
          try {
            created = await this.#create(demand, await this.#ensureKey());
          } catch (error) {
            const keyRefused = error instanceof DriverError && error.code === "invalid" &&
              /ssh[ _]?keys?\b/i.test(error.message);
            if (keyRetried || !keyRefused) throw error;
            keyRetried = true;
            this.#key = undefined;
            continue;
          }
          if (created) return created;
          continue;
        }
        const counts = `${
          pool.filter((m) => m.busy).length
        } busy, ${pool.filter((m) => m.idle).length} idle, ` +
          `${pool.filter((m) => m.status === "creating").length} creating`;
        if (Date.now() >= deadline) {
          throw new DriverError(
            "unavailable",
            `${this.#name}: no free worker slot after waiting ${since(started)} (wait_timeout=${
              describeDuration(this.#settings.waitTimeoutMs)
            }): the namespace ${this.#context.namespace} has ${pool.length} of max_workers=${this.#settings.maxWorkers} ${this.#noun}s (${counts}); raise wait_timeout= (0 waits without limit) or max_workers=`,
          );
        }
        if (Date.now() - lastLine >= 30_000) {
          lastLine = Date.now();
          this.#hooks.progress(
            `${this.#name}: waiting for a free worker slot: ${pool.length} of max_workers=${this.#settings.maxWorkers} ${this.#noun}s in use (${counts}); polling every ${
              describeDuration(this.#provider.api.pollDelay(this.#settings.pollIntervalMs))
            }`,
          );
        }
        const delay = this.#provider.api.pollDelay(this.#settings.pollIntervalMs);
        await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), signal);
      }
    } catch (error) {
      if (signal?.aborted && !(error instanceof DriverError)) {
        throw new DriverError(
          "failed",
          `${this.#name}: the run was stopped while a machine was being provisioned`,
        );
      }
      throw error instanceof DriverError ? error : this.#apiFailure("provision a machine", error);
    }
  }

  async #claimIdle(
    pool: readonly PoolMachine[],
    tag: string,
  ): Promise<Lease | "lost" | undefined> {
    let lost = false;
    for (let machine of pool) {
      if (
        !machine.idle || machine.busy || machine.status !== "running" || machine.claims.length > 0
      ) continue;
      const hostKey = await loadHostKey(this.#dir, machine.name);
      if (machine.keyTag !== tag || !hostKey) {
        this.#reportOnce(
          `${this.#name}: parked ${this.#noun} ${machine.name} is not claimed: this host does not hold ${
            machine.keyTag !== tag ? "the SSH key it was created with" : "its host key"
          }; it counts toward max_workers until idle_timeout, or remove it with pocketci gc --driver=${this.#name}`,
        );
        continue;
      }
      const claimedMachine = await this.#claim(machine);
      if (!claimedMachine) {
        lost = true;
        continue;
      }
      machine = claimedMachine;
      const claimedAt = Date.now();
      this.#hooks.progress(`${this.#name}: claimed parked ${this.#noun} ${machine.name}`);
      await this.#context.record(this.#record("machine", machine.name, { id: machine.id }));
      await this.#context.record(this.#record("volume", volumeName(machine.name)));
      try {
        const docker = await this.#connect(machine, hostKey, claimedAt);
        return { machine, size: machine.size, docker };
      } catch (error) {
        if (this.#context.signal?.aborted) throw error;
        this.#hooks.progress(
          `${this.#name}: parked ${this.#noun} ${machine.name} is unusable (${
            oneLine(error)
          }); deleting it`,
        );
        await this.#destroy(machine, this.#record("machine", machine.name));
      }
    }
    return lost ? "lost" : undefined;
  }

  /** Compare-and-set by marker: write ours, re-read, back off when anyone else is there. */
  async #claim(machine: PoolMachine): Promise<PoolMachine | undefined> {
    const runId = this.#context.runId;
    const atomic = this.#provider.claimParked
      ? await this.#provider.claimParked(machine, runId)
      : "unsupported";
    if (atomic !== "unsupported") {
      if (atomic) return atomic;
      await this.#backOff(machine);
      return undefined;
    }
    try {
      await this.#provider.addClaim(machine, runId);
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) return undefined;
      throw error;
    }
    if (this.#settings.claimSettleMs > 0) {
      await sleep(this.#settings.claimSettleMs, this.#context.signal);
    }
    const current = await this.#provider.getMachine(machine.id);
    const won = current !== undefined && current.idle && !current.busy &&
      current.claims.length === 1 &&
      current.claims[0] === runId.toLowerCase().replace(/[^a-z0-9._-]/g, "-");
    if (!won) {
      if (current) await this.#provider.removeClaim(current, runId).catch(() => {});
      await this.#backOff(machine);
      return undefined;
    }
    await this.#provider.markBusy(current, runId);
    return current;
  }

  async #backOff(machine: PoolMachine): Promise<void> {
    this.#hooks.progress(
      `${this.#name}: another run claimed ${this.#noun} ${machine.name} first; backing off`,
    );
    await sleep(100 + Math.random() * 400, this.#context.signal);
  }

  async #connect(machine: PoolMachine, hostKey: string, from: number): Promise<DockerDriver> {
    const key = await this.#localKey();
    const signal = this.#context.signal;
    const address: MachineAddress = {
      ip: machine.ip!,
      port: this.#settings.sshPort,
      clientKey: key.pair.privateKey,
      hostKey,
    };
    const retry = this.#settings.connectRetryMs ?? 1_000;
    const sshStart = Date.now();
    let lease;
    try {
      lease = await waitForSsh(address, sshStart + this.#settings.sshTimeoutMs, signal, retry);
    } catch (error) {
      throw this.#stageError(
        machine,
        "SSH reachable",
        "ssh_timeout",
        this.#settings.sshTimeoutMs,
        error,
      );
    }
    const sshMs = Date.now() - sshStart;
    const dockerStart = Date.now();
    try {
      const docker = await waitForDocker(
        address,
        this.#inner,
        dockerStart + this.#settings.dockerTimeoutMs,
        signal,
        retry,
      )
        .catch((error) => {
          throw this.#stageError(
            machine,
            "Docker ready",
            "docker_timeout",
            this.#settings.dockerTimeoutMs,
            error,
          );
        });
      this.#hooks.progress(
        `${this.#name}: ${this.#noun} ${machine.name} ready in ${since(from)} (SSH ${
          describeDuration(sshMs)
        }, Docker ${since(dockerStart)})`,
      );
      return docker;
    } finally {
      await lease.release();
    }
  }

  #stageError(
    machine: PoolMachine,
    stage: string,
    param: string,
    ms: number,
    error: unknown,
  ): Error {
    if (!(error instanceof StageTimeout)) {
      return error instanceof Error ? error : new Error(String(error));
    }
    return new DriverError(
      "unavailable",
      `${this.#name}: ${this.#noun} ${machine.name} missed the "${stage}" stage within ${param}=${
        describeDuration(ms)
      } (last error: ${error.lastError}); it was deleted; raise ${param}= if the image is slow to boot`,
    );
  }

  /** Creates a machine; undefined when a concurrent run's machine took the slot first. */
  async #create(
    demand: Demand,
    key: { pair: KeyPair; id: string; tag: string },
  ): Promise<Lease | undefined> {
    const signal = this.#context.signal;
    const name = machineName(this.#context.namespace, this.#context.runId, this.#index++);
    const size = this.sizeFor(demand);
    const hostKey = generateKeyPair(`pocketci-host-${name}`);
    await saveHostKey(this.#dir, name, hostKey.publicKey);
    const machineRecord = this.#record("machine", name);
    const volName = volumeName(name);
    const volumeRecord = this.#record("volume", volName);
    await this.#context.record(machineRecord);
    await this.#context.record(volumeRecord);
    let volume: ProviderVolume | undefined;
    let machine: PoolMachine | undefined;
    const created = Date.now();
    try {
      volume = await this.#lookupAfter(
        () => this.#provider.createVolume(volName, this.#settings.diskSizeGb, this.#context.runId),
        () => this.#provider.findVolume(volName),
      );
      this.#hooks.progress(
        `${this.#name}: creating ${this.#noun} ${name} (${this.#provider.sizeParam}=${size}, ${this.#settings.region}, ${this.#settings.diskSizeGb} GB Docker volume)`,
      );
      machine = await this.#lookupAfter(
        () =>
          this.#provider.createMachine({
            name,
            size,
            image: this.#settings.image,
            region: this.#settings.region,
            keyId: key.id,
            keyTag: key.tag,
            userData: buildUserData({ hostKey, dataDevice: this.#provider.volumeDevice(volume!) }),
            runId: this.#context.runId,
            volumeId: volume!.id,
          }),
        () => this.#provider.findMachine(name),
      );
      machine = await this.#waitRunning(machine, created);
      this.#hooks.progress(
        `${this.#name}: ${this.#noun} ${name} running at ${machine.ip} after ${since(created)}`,
      );
      // A concurrent run may have created past max_workers at the same moment: the newer backs off.
      const pool = await this.#provider.listPool();
      const order = pool.map((m) => m.id).sort((a, b) =>
        Number(a) - Number(b) || a.localeCompare(b)
      );
      if (order.indexOf(machine.id) >= this.#settings.maxWorkers) {
        this.#hooks.progress(
          `${this.#name}: another run took the last worker slot; deleting ${name} and waiting`,
        );
        await this.#destroy(machine, machineRecord, volume, volumeRecord);
        return undefined;
      }
      const docker = await this.#connect(machine, hostKey.publicKey, created);
      return { machine, size, docker };
    } catch (error) {
      signal?.aborted
        ? this.#hooks.progress(
          `${this.#name}: interrupted while provisioning ${name}; deleting what exists`,
        )
        : undefined;
      if (machine === undefined) {
        machine = await this.#provider.findMachine(name).catch(() => undefined);
      }
      await this.#destroy(
        machine,
        machineRecord,
        volume ?? await this.#provider.findVolume(volName).catch(() => undefined),
        volumeRecord,
      )
        .catch((cleanup) =>
          this.#context.warn(
            `${this.#name}: could not delete ${name}: ${oneLine(cleanup)}; pocketci gc removes it`,
          )
        );
      if (signal?.aborted) {
        throw new DriverError(
          "failed",
          `${this.#name}: the run was stopped while ${this.#noun} ${name} was being provisioned; it was deleted`,
        );
      }
      if (error instanceof DriverError) throw error;
      throw this.#apiFailure(`create ${this.#noun} ${name}`, error);
    }
  }

  /** Runs a create; when its answer was lost, looks the name up (a few times) before trying once more. */
  async #lookupAfter<T>(
    create: () => Promise<T>,
    lookup: () => Promise<T | undefined>,
  ): Promise<T> {
    try {
      return await create();
    } catch (error) {
      if (!(error instanceof ApiError && error.ambiguous)) throw error;
      for (let attempt = 0; attempt < 3; attempt++) {
        const found = await lookup();
        if (found) return found;
        await sleep(500 * (attempt + 1), this.#context.signal);
      }
      return await create();
    }
  }

  async #waitRunning(machine: PoolMachine, created: number): Promise<PoolMachine> {
    const deadline = created + this.#settings.sshTimeoutMs;
    let delay = this.#settings.statusPollMs ?? 1_000;
    let current: PoolMachine | undefined = machine;
    while (!(current.status === "running" && current.ip)) {
      if (current.status === "error") {
        throw new DriverError(
          "unavailable",
          `${this.#name}: ${this.#noun} ${machine.name} failed to start (status error); it was deleted`,
        );
      }
      if (Date.now() >= deadline) {
        throw new DriverError(
          "unavailable",
          `${this.#name}: ${this.#noun} ${machine.name} missed the "running" stage within ssh_timeout=${
            describeDuration(this.#settings.sshTimeoutMs)
          } (status ${current.status}); it was deleted; raise ssh_timeout=`,
        );
      }
      await sleep(
        Math.min(this.#provider.api.pollDelay(delay), Math.max(0, deadline - Date.now())),
        this.#context.signal,
      );
      this.#context.signal?.throwIfAborted();
      delay = Math.min(delay * 1.5, 5_000);
      current = await this.#provider.getMachine(machine.id);
      if (!current) {
        throw new DriverError(
          "unavailable",
          `${this.#name}: ${this.#noun} ${machine.name} disappeared while starting`,
        );
      }
    }
    return current;
  }

  /** Deletes a machine, its Docker volume and its host key; forgets their records. */
  async #destroy(
    machine: PoolMachine | undefined,
    machineRecord: ResourceRecord | undefined,
    volume?: ProviderVolume,
    volumeRecord?: ResourceRecord,
  ): Promise<void> {
    if (machine) await this.#provider.deleteMachine(machine.id);
    const name = machine?.name ?? machineRecord?.id;
    const vol = volume ?? (name ? await this.#provider.findVolume(volumeName(name)) : undefined);
    if (vol) await this.#provider.deleteVolume(vol.id);
    if (name) await removeHostKey(this.#dir, name);
    if (machineRecord) await this.#context.forget(machineRecord);
    if (volumeRecord) await this.#context.forget(volumeRecord);
    else if (name) await this.#context.forget(this.#record("volume", volumeName(name)));
  }

  /**
   * Gives the machine back: parked (busy → idle) with `reuse_worker=true`, else deleted with its
   * volume; the namespace key goes too when no machine of the pool is left.
   */
  async release(lease: Lease): Promise<void> {
    const record = this.#record("machine", lease.machine.name);
    if (this.#settings.reuseWorker) {
      await this.#provider.markIdle(lease.machine);
      await this.#context.forget(record);
      await this.#context.forget(this.#record("volume", volumeName(lease.machine.name)));
      this.#hooks.progress(`${this.#name}: parked ${this.#noun} ${lease.machine.name} for reuse`);
      return;
    }
    await this.#destroy(lease.machine, record);
    this.#hooks.progress(`${this.#name}: deleted ${this.#noun} ${lease.machine.name}`);
    await this.removeKeyIfUnused();
  }

  /** Deletes the namespace key (remote and local) when no machine of the pool remains. */
  async removeKeyIfUnused(): Promise<void> {
    const key = this.#key;
    if (!key || this.#settings.reuseWorker) return;
    if ((await this.#provider.listPool()).length > 0) return;
    await this.#provider.deleteKey(key.id);
    await removeClientKey(this.#dir);
    await this.#context.forget(this.#record("key", key.name));
    this.#key = undefined;
  }
}
