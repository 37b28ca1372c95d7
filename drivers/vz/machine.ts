/**
 * Boots one vz machine for a run and hands the agent driver an {@link AgentMachine}: the
 * run's private directory, the raw disk (converted once, copied per VM), the seed, the share
 * holding the guest's Deno and the agent's sources and start script, the VM started by the
 * hypervisor, then the agent reached over its stream (retried until the boot timeout). On
 * failure or close everything the boot made is removed.
 *
 * @module
 */

import type { DriverContext, ResourceRecord } from "../contract.ts";
import { DriverError } from "../contract.ts";
import { AgentClient } from "../agent_client/client.ts";
import type { AgentMachine } from "../agent_driver/machine.ts";
import type { VzConfig } from "./config.ts";
import type { Hypervisor, RunningVm } from "./hypervisor.ts";
import { AGENT_DIR, GUEST_SHARE, GUEST_TASKS, vmSpec } from "./vm_spec.ts";
import { copyAgentSources } from "./agent_files.ts";
import { type ShareMount, startScript, userData } from "./guest_boot.ts";
import { ensureRawImage, writableCopy } from "./image.ts";
import { writeSeedIso } from "./seed.ts";

/** What a boot needs besides the settings. */
export interface VzBootOptions {
  /** Starts the VM. */
  readonly hypervisor: Hypervisor;
  /** The base image (resolved: `image=` or the cached cloud image). */
  readonly baseImage: string;
  /** The guest's Deno binary on the host. */
  readonly denoBinary: string;
  /** Shared libraries for a guest without glibc (tests); copied to the share's `lib/`. */
  readonly guestLibs?: readonly string[];
  /** How the guest mounts the share (virtiofs under vz). */
  readonly shareMount?: ShareMount;
  /** Serve the agent on this virtio-serial port instead of the vsock port (tests on QEMU). */
  readonly serialPort?: string;
  /** How long the guest may take until its agent answers. */
  readonly bootTimeoutMs?: number;
  /** Progress lines. */
  readonly progress?: (line: string) => void;
}

/** Boots a machine for the run of `context`. */
export async function bootVzMachine(
  config: VzConfig,
  context: DriverContext,
  options: VzBootOptions,
): Promise<AgentMachine> {
  const progress = options.progress ?? (() => {});
  const began = Date.now();
  const seconds = () => `${((Date.now() - began) / 1000).toFixed(1)} s`;
  const dir = `${context.runDir}/vz`;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const spec = vmSpec(config, dir);
  const share = spec.shares[0].hostPath;
  const records: ResourceRecord[] = [];
  const dirRecord: ResourceRecord = {
    kind: "dir",
    id: dir,
    driver: "vz",
    runId: context.runId,
    namespace: context.namespace,
    createdAt: new Date().toISOString(),
  };
  await context.record(dirRecord);
  records.push(dirRecord);
  let vm: RunningVm | undefined;
  const cleanup = async (): Promise<{ resource: ResourceRecord; reason: string }[]> => {
    const failed: { resource: ResourceRecord; reason: string }[] = [];
    if (vm !== undefined) await vm.stop();
    for (const record of records.slice().reverse()) {
      try {
        if (record.kind === "dir") await Deno.remove(record.id, { recursive: true });
        await context.forget(record);
      } catch (error) {
        failed.push({ resource: record, reason: (error as Error).message });
      }
    }
    return failed;
  };
  try {
    const raw = await ensureRawImage(options.baseImage, config.cacheDir);
    await writableCopy(raw, spec.disk);
    progress(`vz: disk ready (${seconds()})`);
    await writeSeedIso(spec.seedIso, `pocketci-${context.runId}`, userData());
    const agentDir = `${share}/${AGENT_DIR}`;
    await Deno.mkdir(agentDir, { recursive: true });
    await linkOrCopy(options.denoBinary, `${agentDir}/deno`);
    if (options.guestLibs !== undefined) {
      await Deno.mkdir(`${agentDir}/lib`, { recursive: true });
      for (const lib of options.guestLibs) {
        await Deno.copyFile(lib, `${agentDir}/lib/${lib.slice(lib.lastIndexOf("/") + 1)}`);
      }
    }
    await copyAgentSources(`${agentDir}/src`);
    await Deno.writeTextFile(
      `${agentDir}/start.sh`,
      startScript({
        mount: options.shareMount ?? "virtiofs",
        ...(options.serialPort === undefined ? {} : { serialPort: options.serialPort }),
      }),
      { mode: 0o755 },
    );
    vm = await options.hypervisor.start(spec, context.signal);
    const vmRecord: ResourceRecord = {
      kind: "vm",
      id: String(vm.pid),
      driver: "vz",
      runId: context.runId,
      namespace: context.namespace,
      createdAt: new Date().toISOString(),
      detail: { monitor: options.hypervisor.name, dir },
    };
    await context.record(vmRecord);
    records.push(vmRecord);
    progress(`vz: ${options.hypervisor.name} started the VM (${seconds()})`);
    const client = await connectAgent(vm, options.bootTimeoutMs ?? 300_000, context.signal);
    progress(`vz: guest agent ready (${seconds()}): ${client.software}`);
    return {
      client,
      volumesDir: GUEST_SHARE,
      tasksDir: GUEST_TASKS,
      resources: records,
      close: async () => {
        await client.close();
        return await cleanup();
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** Dials the agent until it answers a hello, the VM exits, or the timeout passes. */
async function connectAgent(
  vm: RunningVm,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<AgentClient> {
  const deadline = Date.now() + timeoutMs;
  let exited: string | undefined;
  vm.exited.then((reason) => exited = reason);
  let last = "";
  while (true) {
    signal?.throwIfAborted();
    if (exited !== undefined) {
      throw new DriverError("failed", `the VM stopped during its boot: ${exited}`);
    }
    try {
      const stream = await vm.connectAgent();
      const helloTimeoutMs = vm.serial ? Math.max(1000, deadline - Date.now()) : 3000;
      return await AgentClient.connect(stream, { helloTimeoutMs });
    } catch (error) {
      last = (error as Error).message;
      if (error instanceof DriverError && /version mismatch/.test(last)) throw error;
    }
    if (Date.now() > deadline) {
      throw new DriverError(
        "failed",
        `the guest agent did not answer within ${Math.round(timeoutMs / 1000)} s (last: ${last})`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** A hard link when the cache and the run share a filesystem, else a copy. */
async function linkOrCopy(source: string, target: string): Promise<void> {
  try {
    await Deno.link(source, target);
  } catch {
    await Deno.copyFile(source, target);
    await Deno.chmod(target, 0o755);
  }
}
