/**
 * What the shared machinery needs from a cloud provider: SSH keys, machines booted with
 * user_data, block volumes, the namespace's pool listed by tag or label selector, pool-state
 * updates (busy, idle, claim markers) and deletes. DigitalOcean (tags) and Hetzner (labels)
 * implement it; everything above works on {@link PoolMachine}s.
 *
 * @module
 */

import type { ApiClient } from "./api_client.ts";

/** A machine's provisioning status, normalised. */
export type MachineStatus = "creating" | "running" | "off" | "error";

/** A machine of the namespace's pool as the provider reports it. */
export interface PoolMachine {
  /** Provider ID. */
  readonly id: string;
  /** Name (`pocketci-<namespace>-<run>-<n>`). */
  readonly name: string;
  /** Provisioning status. */
  readonly status: MachineStatus;
  /** Public IPv4 address, once it has one. */
  readonly ip?: string;
  /** Claimed by a running pipeline. */
  readonly busy: boolean;
  /** Parked and available for reuse. */
  readonly idle: boolean;
  /** The run that created or last claimed it. */
  readonly runId?: string;
  /** Runs whose claim marker it carries right now. */
  readonly claims: readonly string[];
  /** The short fingerprint of the namespace key it was created with. */
  readonly keyTag?: string;
  /** When it was parked (ms since the epoch). */
  readonly idleSince?: number;
  /**
   * DigitalOcean: the tag its last park wrote (`ci-idle-since-<seconds>-<id>`), unique to this
   * machine and park, so deleting it is a claim only one run can win.
   */
  readonly idleMarker?: string;
  /** Volumes attached to it (provider IDs). */
  readonly volumeIds: readonly string[];
  /** The size slug or server type it has. */
  readonly size?: string;
  /** Hetzner: every label as read (a label update replaces the whole map). */
  readonly labels?: Readonly<Record<string, string>>;
}

/** An SSH key registered at the provider. */
export interface ProviderKey {
  /** Provider ID. */
  readonly id: string;
  /** Name. */
  readonly name: string;
}

/** A block volume at the provider. */
export interface ProviderVolume {
  /** Provider ID. */
  readonly id: string;
  /** Name. */
  readonly name: string;
  /** The run that created it, from its tags or labels. */
  readonly runId?: string;
  /** Machines it is attached to. */
  readonly attachedTo: readonly string[];
}

/** Everything a machine is created with. */
export interface CreateMachine {
  /** Name (unique; the lookup key after an ambiguous create). */
  readonly name: string;
  /** Size slug or server type. */
  readonly size: string;
  /** Image. */
  readonly image: string;
  /** Region or location. */
  readonly region: string;
  /** The namespace key's provider ID. */
  readonly keyId: string;
  /** The short fingerprint of the namespace key (a tag or label, to refuse foreign keys). */
  readonly keyTag: string;
  /** cloud-init user_data. */
  readonly userData: string;
  /** The creating run. */
  readonly runId: string;
  /** A volume to attach at creation. */
  readonly volumeId?: string;
}

/** One provider, bound to a token and a namespace. */
export interface MachineProvider {
  /** `digitalocean` or `hetzner`. */
  readonly driver: "digitalocean" | "hetzner";
  /** What the parameter choosing the machine size is called (`size`, `server_type`). */
  readonly sizeParam: string;
  /** The API client (request counts, budget). */
  readonly api: ApiClient;
  /** The key with this name, if registered. */
  findKey(name: string): Promise<ProviderKey | undefined>;
  /** Registers a public key. */
  createKey(name: string, publicKey: string): Promise<ProviderKey>;
  /** Deletes a key (already gone is a success). */
  deleteKey(id: string): Promise<void>;
  /** Creates a volume of `sizeGb` for the run. */
  createVolume(name: string, sizeGb: number, runId: string): Promise<ProviderVolume>;
  /** The volume with this name, if any. */
  findVolume(name: string): Promise<ProviderVolume | undefined>;
  /** The namespace's volumes. */
  listVolumes(): Promise<ProviderVolume[]>;
  /** Deletes a volume (already gone is a success; one still attached is retried briefly). */
  deleteVolume(id: string): Promise<void>;
  /** The device path cloud-init sees for a volume. */
  volumeDevice(volume: ProviderVolume): string;
  /** Creates a machine, tagged busy for `runId`. */
  createMachine(request: CreateMachine): Promise<PoolMachine>;
  /** The machine with this name, if any. */
  findMachine(name: string): Promise<PoolMachine | undefined>;
  /** The machine, or undefined when it is gone. */
  getMachine(id: string): Promise<PoolMachine | undefined>;
  /** Every machine of the namespace's pool, in any status. */
  listPool(): Promise<PoolMachine[]>;
  /**
   * Claims a parked machine in one step when the provider has an atomic way (DigitalOcean:
   * deleting its unique idle marker tag succeeds for one caller only), marking it busy for
   * `runId`: the claimed machine, undefined when another run won, or "unsupported" (no marker:
   * the pool falls back to the claim-marker protocol).
   */
  claimParked?(
    machine: PoolMachine,
    runId: string,
  ): Promise<PoolMachine | undefined | "unsupported">;
  /** Adds the run's claim marker. */
  addClaim(machine: PoolMachine, runId: string): Promise<void>;
  /** Removes the run's claim marker. */
  removeClaim(machine: PoolMachine, runId: string): Promise<void>;
  /** Marks a claimed machine busy for `runId` (removing idle and the run's claim marker). */
  markBusy(machine: PoolMachine, runId: string): Promise<void>;
  /** Parks a machine: busy → idle, with the time. */
  markIdle(machine: PoolMachine): Promise<void>;
  /** Deletes a machine (already gone is a success). */
  deleteMachine(id: string): Promise<void>;
}

/** The namespace as tags and names take it: `[a-z0-9-]`, at most 40 characters. */
export function safeNamespace(namespace: string): string {
  return namespace.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40)
    .replace(/-+$/, "") || "default";
}

/** The name of the namespace's SSH key at the provider. */
export function keyName(namespace: string): string {
  return `pocketci-${safeNamespace(namespace)}`;
}

/**
 * A machine's name: `pocketci-<namespace>-<run>-<n>`, a valid hostname of at most 63 characters,
 * carrying the namespace and the run so a machine whose create answer was lost is found by name.
 */
export function machineName(namespace: string, runId: string, index: number): string {
  const ns = safeNamespace(namespace).slice(0, 30).replace(/-+$/, "");
  const run = runId.toLowerCase().replace(/[^a-z0-9]/g, "").slice(-18);
  return `pocketci-${ns}-${run}-${index}`;
}

/** A volume's name for the machine it belongs to. */
export function volumeName(machine: string): string {
  return `${machine}-docker`.slice(0, 63);
}
