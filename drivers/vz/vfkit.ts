/**
 * The vz hypervisor through `vfkit`, a small VM monitor on Apple's Virtualization.framework
 * that is already signed with the virtualization entitlement (`brew install vfkit`): the VM
 * is its command line (`vfkitArgs`), the agent's vsock port is a unix socket it bridges, and
 * its REST socket stops the VM. NOT VERIFIED on a Mac in this repository (no macOS here).
 *
 * @module
 */

import { DriverError } from "../contract.ts";
import { connectUnix } from "../agent_client/connect.ts";
import type { Hypervisor, RunningVm } from "./hypervisor.ts";
import { vfkitArgs, type VmSpec } from "./vm_spec.ts";
import { monitorError, requireMacos } from "./host.ts";

/** The vfkit hypervisor; `binary` defaults to `vfkit` on PATH. */
export function vfkitHypervisor(binary = "vfkit"): Hypervisor {
  return {
    name: "vfkit",
    start(spec: VmSpec): Promise<RunningVm> {
      requireMacos();
      let child: Deno.ChildProcess;
      try {
        child = new Deno.Command(binary, {
          args: vfkitArgs(spec),
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) {
          throw new DriverError(
            "unavailable",
            "the vz driver runs VMs with vfkit, which was not found; install it (brew install vfkit)",
          );
        }
        throw error;
      }
      let output = "";
      const decoder = new TextDecoder();
      const collect = async (stream: ReadableStream<Uint8Array>) => {
        for await (const chunk of stream) output = (output + decoder.decode(chunk)).slice(-8192);
      };
      const collected = Promise.all([collect(child.stdout), collect(child.stderr)]);
      const exited = child.status.then(async (status) => {
        await collected.catch(() => {});
        return monitorError(binary, output).message + ` (exit ${status.code})`;
      });
      const stop = async () => {
        // A stop request through the REST socket, then SIGTERM, then SIGKILL.
        await fetchState(spec.controlSocket, "Stop").catch(() => {});
        const timers = [
          setTimeout(() => signal(child, "SIGTERM"), 10_000),
          setTimeout(() => signal(child, "SIGKILL"), 15_000),
        ];
        await child.status;
        timers.forEach(clearTimeout);
        await collected.catch(() => {});
      };
      return Promise.resolve({
        pid: child.pid,
        connectAgent: () => connectUnix(spec.vsock.socket),
        exited,
        stop,
      });
    },
  };
}

function signal(child: Deno.ChildProcess, name: Deno.Signal): void {
  try {
    child.kill(name);
  } catch {
    // Already exited.
  }
}

/** POSTs a state change to vfkit's REST socket (`/vm/state`). */
async function fetchState(socket: string, state: "Stop" | "HardStop"): Promise<void> {
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });
  try {
    const response = await fetch("http://localhost/vm/state", {
      method: "POST",
      body: JSON.stringify({ state }),
      client,
    });
    await response.body?.cancel();
  } finally {
    client.close();
  }
}
