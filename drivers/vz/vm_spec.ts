/**
 * The VM's configuration as data: every file and device of one vz machine, built by pure
 * functions from the settings and the machine's directory, and the `vfkit` command line that
 * realises it. Unit-tested on any host; only running it needs a Mac.
 *
 * @module
 */

import type { VzConfig } from "./config.ts";

/** The vsock port the guest agent listens on. */
export const AGENT_VSOCK_PORT = 1024;

/** The virtiofs tag of the shared directory (volumes and the agent's files). */
export const SHARE_TAG = "volumes";

/** Where the guest mounts the share (volumes appear at `/mnt/volumes/<name>`). */
export const GUEST_SHARE = "/mnt/volumes";

/** The share's subdirectory holding the agent (a name no volume can take: it starts with a dot). */
export const AGENT_DIR = ".pocketci-agent";

/** Where tasks get their fresh directories in the guest. */
export const GUEST_TASKS = "/var/tmp/pocketci/tasks";

/** One machine's configuration. */
export interface VmSpec {
  /** vCPUs. */
  readonly cpus: number;
  /** Memory in MiB. */
  readonly memoryMiB: number;
  /** The writable raw disk (a copy of the base image). */
  readonly disk: string;
  /** The cloud-init seed (read-only). */
  readonly seedIso: string;
  /** The EFI variable store (created at first boot). */
  readonly efiVariableStore: string;
  /** Shared directories, by virtiofs tag. */
  readonly shares: readonly { readonly tag: string; readonly hostPath: string }[];
  /** The guest vsock port of the agent and the host unix socket that reaches it. */
  readonly vsock: { readonly port: number; readonly socket: string };
  /** The serial console's log file. */
  readonly consoleLog: string;
  /** vfkit's REST control socket (state, stop). */
  readonly controlSocket: string;
}

/** The files of a machine living in `dir` (the run's private directory for it). */
export function vmSpec(config: VzConfig, dir: string): VmSpec {
  return {
    cpus: config.cpus,
    memoryMiB: config.memory,
    disk: `${dir}/disk.raw`,
    seedIso: `${dir}/seed.iso`,
    efiVariableStore: `${dir}/efi-variable-store`,
    shares: [{ tag: SHARE_TAG, hostPath: `${dir}/share` }],
    vsock: { port: AGENT_VSOCK_PORT, socket: `${dir}/agent.sock` },
    consoleLog: `${dir}/console.log`,
    controlSocket: `${dir}/vfkit.sock`,
  };
}

/** Checks a spec's numbers; a bad one is a one-line error naming the DSN parameter. */
export function checkVmSpec(spec: VmSpec): void {
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1) {
    throw new Error(`vz: cpus=${spec.cpus} must be a whole number of at least 1`);
  }
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 256) {
    throw new Error(`vz: memory=${spec.memoryMiB} must be at least 256 (MB)`);
  }
  for (const share of spec.shares) {
    if (!/^[A-Za-z0-9_.-]{1,36}$/.test(share.tag)) {
      throw new Error(`vz: virtiofs tag "${share.tag}" must be 1-36 letters, digits, _ . -`);
    }
  }
}

/**
 * The `vfkit` arguments for `spec`: EFI boot with a variable store created on first use,
 * the raw disk and the seed as virtio block devices, one virtiofs device per share, the
 * agent's vsock port bridged to a host unix socket, a NAT NIC, an entropy device, the
 * console to a log file, and the REST control socket.
 */
export function vfkitArgs(spec: VmSpec): string[] {
  checkVmSpec(spec);
  return [
    "--cpus",
    String(spec.cpus),
    "--memory",
    String(spec.memoryMiB),
    "--bootloader",
    `efi,variable-store=${spec.efiVariableStore},create`,
    "--device",
    `virtio-blk,path=${spec.disk}`,
    "--device",
    `virtio-blk,path=${spec.seedIso}`,
    ...spec.shares.flatMap((share) => [
      "--device",
      `virtio-fs,sharedDir=${share.hostPath},mountTag=${share.tag}`,
    ]),
    "--device",
    `virtio-vsock,port=${spec.vsock.port},socketURL=${spec.vsock.socket},listen`,
    "--device",
    "virtio-net,nat",
    "--device",
    "virtio-rng",
    "--device",
    `virtio-serial,logFilePath=${spec.consoleLog}`,
    "--restful-uri",
    `unix://${spec.controlSocket}`,
  ];
}
