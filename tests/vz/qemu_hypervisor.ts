/**
 * The vz driver's hypervisor part replaced by QEMU, for tests on Linux: the same VmSpec (raw
 * disk copy, seed ISO, the share with the agent), booted as the minimal QEMU test guest
 * (`.ci/setup_qemu.sh`) with the share over 9p and the agent on a virtio-serial port whose
 * host end is a unix socket, in place of virtiofs and vsock. The test guest has no
 * cloud-init: its QEMU guest agent runs the share's start script, the script cloud-init runs
 * under vz.
 *
 * @module
 */

import { qemuArgs } from "../../drivers/qemu/machine.ts";
import { qemuConfig } from "../../drivers/qemu/config.ts";
import { QgaClient } from "../../drivers/qemu/qga.ts";
import { connectUnix } from "../../drivers/agent_client/connect.ts";
import type { Hypervisor, RunningVm } from "../../drivers/vz/hypervisor.ts";
import { AGENT_DIR, GUEST_SHARE, type VmSpec } from "../../drivers/vz/vm_spec.ts";
import { GUEST_DIR, GUEST_KERNEL } from "../qemu/guest_fixture.ts";

/** The virtio-serial port name the agent listens on in the test guest. */
export const AGENT_PORT_NAME = "org.pocketci.agent.0";

/** The shared libraries the host's Deno needs (the test guest has only busybox's). */
export async function denoLibraries(deno: string): Promise<string[]> {
  const out = await new Deno.Command("ldd", { args: [deno], stdout: "piped" }).output();
  return [...new TextDecoder().decode(out.stdout).matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]);
}

/** QEMU as the hypervisor, booting the test guest. */
export const qemuHypervisor: Hypervisor = {
  name: "qemu",
  async start(spec: VmSpec): Promise<RunningVm> {
    const dir = spec.disk.slice(0, spec.disk.lastIndexOf("/"));
    const config = qemuConfig({
      memory: spec.memoryMiB,
      cpus: spec.cpus,
      accel: "tcg",
      kernel: GUEST_KERNEL,
      initrd: `${GUEST_DIR}/initrd.img`,
      append: "console=ttyS0 panic=-1 quiet",
    });
    const args = [
      ...qemuArgs(
        config,
        dir,
        spec.shares.map((share) => ({ ...share, mountPoint: GUEST_SHARE })),
        undefined,
        spec.seedIso,
      ),
      "-drive",
      `file=${spec.disk},if=virtio,format=raw`,
      "-chardev",
      `socket,path=${spec.vsock.socket},server=on,wait=off,id=pocketciagent`,
      "-device",
      `virtserialport,chardev=pocketciagent,name=${AGENT_PORT_NAME}`,
    ];
    // setpriv --pdeathsig: QEMU is killed when the test process dies (Ctrl-C, kill -9), so a
    // killed test run leaves no VM behind.
    const child = new Deno.Command("setpriv", {
      args: ["--pdeathsig", "SIGKILL", "--", config.qemuBinary, ...args],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    const reading = (async () => {
      for await (const chunk of child.stderr) stderr += new TextDecoder().decode(chunk);
    })();
    const exited = child.status.then(async (status) => {
      await reading.catch(() => {});
      return `qemu exited with ${status.code}: ${stderr.trim().split("\n").at(-1) ?? ""}`;
    });
    const kill = async () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      await reading.catch(() => {});
    };
    try {
      // The "cloud-init" of the test guest: its QEMU guest agent mounts the share and starts
      // the agent with the share's start script.
      const qga = await QgaClient.connect(`${dir}/qga.sock`, {
        deadline: Date.now() + 120_000,
        tryMs: 250,
      });
      try {
        const script =
          `mkdir -p ${GUEST_SHARE} && (grep -qs " ${GUEST_SHARE} " /proc/mounts || mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 volumes ${GUEST_SHARE}) && (setsid sh ${GUEST_SHARE}/${AGENT_DIR}/start.sh >${GUEST_SHARE}/${AGENT_DIR}/agent.log 2>&1 </dev/null &)`;
        await qga.exec({ path: "/bin/sh", args: ["-c", script], capture: false }, 10_000);
      } finally {
        qga.close();
      }
    } catch (error) {
      await kill();
      throw error;
    }
    return {
      pid: child.pid,
      serial: true,
      connectAgent: () => connectUnix(spec.vsock.socket),
      exited,
      stop: kill,
    };
  },
};
