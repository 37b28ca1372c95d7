/**
 * What the agent driver runs on: a machine (a VM, or the host itself in tests) whose agent
 * it talks to, with a directory shared with the host where volumes live and a directory for
 * the tasks' own working directories. A hypervisor-specific part (vz, QEMU, a local process)
 * boots it; everything else is the agent driver's.
 *
 * @module
 */

import type { ResourceRecord } from "../contract.ts";
import type { AgentClient } from "../agent_client/client.ts";

/** A booted machine with a connected agent. */
export interface AgentMachine {
  /** The connected agent. */
  readonly client: AgentClient;
  /** The guest path under which the driver keeps volumes (a shared mount). */
  readonly volumesDir: string;
  /** The guest path under which each task gets its fresh working directory. */
  readonly tasksDir: string;
  /** Resources the machine recorded (the VM, the agent process), reported by `close()`. */
  readonly resources: readonly ResourceRecord[];
  /** Stops the machine and removes what it created; resolves with what it could not remove. */
  close(): Promise<{ resource: ResourceRecord; reason: string }[]>;
}

/** Boots a machine (called once, at the first operation that needs it). */
export type MachineBooter = (signal?: AbortSignal) => Promise<AgentMachine>;
