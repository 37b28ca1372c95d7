/**
 * The hypervisor part of the vz driver, kept behind one small interface: start a VM from a
 * {@link VmSpec}, reach its agent, stop it. `vfkit.ts` implements it with Apple's
 * Virtualization.framework; the tests implement it with QEMU, so everything else of the
 * driver runs the same code in both.
 *
 * @module
 */

import type { AgentStream } from "../agent_client/client.ts";
import type { VmSpec } from "./vm_spec.ts";

/** A started VM. */
export interface RunningVm {
  /** The VM monitor's process id (recorded for `gc`). */
  readonly pid: number;
  /**
   * True when the agent's stream is a serial line (a virtio-serial port): it connects at once
   * whether or not the agent runs, and what is sent before the agent reads stays queued, so
   * the host connects once and waits for the hello instead of retrying (a retried hello would
   * reach the agent later as stale input).
   */
  readonly serial?: boolean;
  /** Opens a new byte stream to the guest agent (rejects while it is not listening yet). */
  connectAgent(): Promise<AgentStream>;
  /** Why the VM ended, once it did (the monitor exited). */
  readonly exited: Promise<string>;
  /** Stops the VM (a stop request, then a forced stop) and waits for the monitor to exit. */
  stop(): Promise<void>;
}

/** Starts VMs. */
export interface Hypervisor {
  /** Its name, for messages (`vfkit`, `qemu`). */
  readonly name: string;
  /** Starts `spec`; resolves once the monitor runs (not once the guest booted). */
  start(spec: VmSpec, signal?: AbortSignal): Promise<RunningVm>;
}
