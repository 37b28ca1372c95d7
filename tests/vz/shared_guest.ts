/**
 * One vz-shaped machine for a whole test file: booted by `bootVzMachine` (raw disk copy, seed,
 * the share with the guest's Deno and the agent, the start script) with QEMU as the
 * hypervisor, the agent serving a virtio-serial port. Each driver of the conformance suite gets
 * a view of it with its own volumes and tasks directories; the machine is closed once, by
 * the file's last test. Booting takes about 25 s under TCG, mostly Deno starting in the guest.
 *
 * @module
 */

import type { AgentMachine } from "../../drivers/agent_driver/machine.ts";
import { bootVzMachine } from "../../drivers/vz/machine.ts";
import { vzConfig } from "../../drivers/vz/config.ts";
import { GUEST_SHARE, GUEST_TASKS } from "../../drivers/vz/vm_spec.ts";
import { AGENT_PORT_NAME, denoLibraries, qemuHypervisor } from "./qemu_hypervisor.ts";
import { GUEST_DIR } from "../qemu/guest_fixture.ts";
import { createTestContext, type TestContext } from "../conformance/context.ts";

/** The Deno binary for an x86_64 guest, from the optional npm dependency. */
export const GUEST_DENO = new URL("../../node_modules/@deno/linux-x64-glibc/deno", import.meta.url)
  .pathname;

/** A booted shared machine and the context it was booted in. */
export interface SharedGuest {
  /** The machine. */
  readonly machine: AgentMachine;
  /** The context of the boot (its records, its run directory). */
  readonly context: TestContext;
  /** How long the boot took, in ms. */
  readonly bootMs: number;
  /** Progress lines printed during the boot. */
  readonly progress: string[];
}

/** Boots the machine. */
export async function bootSharedGuest(): Promise<SharedGuest> {
  const context = await createTestContext();
  const progress: string[] = [];
  const started = Date.now();
  try {
    const machine = await bootVzMachine(
      vzConfig({ memory: 1024, cpus: 2, cache_dir: `${context.root}/cache` }),
      context,
      {
        hypervisor: qemuHypervisor,
        baseImage: `${GUEST_DIR}/base.qcow2`,
        denoBinary: GUEST_DENO,
        guestLibs: await denoLibraries(GUEST_DENO),
        shareMount: "9p",
        serialPort: AGENT_PORT_NAME,
        bootTimeoutMs: 150_000,
        progress: (line) => progress.push(line),
      },
    );
    return { machine, context, bootMs: Date.now() - started, progress };
  } catch (error) {
    await context.dispose();
    throw error;
  }
}

let views = 0;

/** A view of the shared machine for one driver: its own directories, nothing to stop. */
export function machineView(shared: SharedGuest): AgentMachine {
  const n = ++views;
  return {
    client: shared.machine.client,
    volumesDir: `${GUEST_SHARE}/t${n}`,
    tasksDir: `${GUEST_TASKS}/t${n}`,
    resources: [],
    close: () => Promise.resolve([]),
  };
}
