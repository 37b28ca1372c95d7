/**
 * The driver conformance suite through the vz driver's code with QEMU in place of Apple's
 * hypervisor: the agent runs in the QEMU test guest (Deno from npm, started by the share's
 * start script) and serves a virtio-serial port. One guest serves the whole file; the first
 * test checks its boot, the last one closes it and checks nothing is left.
 */

import assert from "node:assert/strict";
import { createAgentDriver } from "../../drivers/agent_driver/driver.ts";
import { assertGuest, ignoreQemu } from "../qemu/guest_fixture.ts";
import { bootSharedGuest, machineView, type SharedGuest } from "../vz/shared_guest.ts";
import { defineDriverConformance } from "./driver_suite.ts";

const NAME = "vz (qemu guest)";
const shared: SharedGuest | Error | undefined = ignoreQemu
  ? undefined
  : await bootSharedGuest().catch((error: Error) => error);

Deno.test({
  name: `${NAME}: the guest boots with the agent from the share (raw disk, seed, 9p, serial port)`,
  ignore: ignoreQemu,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    assertGuest();
    if (shared instanceof Error) throw shared;
    const { machine, context, bootMs, progress } = shared!;
    assert.match(machine.client.software, /^pocketci-agent linux x86_64/);
    const dir = `${context.runDir}/vz`;
    for (const file of ["disk.raw", "seed.iso", "share/.pocketci-agent/start.sh"]) {
      assert.ok((await Deno.stat(`${dir}/${file}`)).isFile, `${file} is missing`);
    }
    const info = new TextDecoder().decode(
      (await new Deno.Command("qemu-img", { args: ["info", "--output=json", `${dir}/disk.raw`] })
        .output()).stdout,
    );
    assert.equal(JSON.parse(info).format, "raw", "the VM's disk is not the raw copy");
    let mounts = "";
    const exec = await machine.client.exec(
      { argv: ["cat", "/proc/mounts"], env: {} },
      (_s, chunk) => mounts += new TextDecoder().decode(chunk),
    );
    assert.equal((await exec.wait()).code, 0);
    assert.match(mounts, /^volumes \/mnt\/volumes 9p /m, "the share is not at /mnt/volumes");
    assert.deepEqual(
      [...context.live.values()].map((r) => r.kind).sort(),
      ["dir", "vm"],
      "the boot did not record its directory and VM",
    );
    await Deno.stderr.write(
      new TextEncoder().encode(
        `vz (qemu guest) boot: ${(bootMs / 1000).toFixed(1)} s; ${progress.join("; ")}\n`,
      ),
    );
  },
});

if (!ignoreQemu && shared !== undefined && !(shared instanceof Error)) {
  const guest = shared;
  defineDriverConformance({
    name: NAME,
    createDriver: (ctx) =>
      Promise.resolve(
        createAgentDriver({
          name: "vz",
          boot: () => Promise.resolve(machineView(guest)),
          context: ctx,
        }),
      ),
    absoluteMounts: false,
    sanitize: false,
  });
}

Deno.test({
  name: `${NAME}: closing the machine stops the VM and removes its files and records`,
  ignore: ignoreQemu,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    assertGuest();
    if (shared instanceof Error) throw shared;
    const { machine, context } = shared!;
    try {
      const vm = [...context.live.values()].find((r) => r.kind === "vm")!;
      const failed = await machine.close();
      assert.deepEqual(failed, []);
      assert.deepEqual([...context.live.values()], [], "records left after close");
      await assert.rejects(() => Deno.stat(`${context.runDir}/vz`), Deno.errors.NotFound);
      assert.equal(
        await Deno.stat(`/proc/${vm.id}`).then(() => true, () => false),
        false,
        "the QEMU process is still running",
      );
    } finally {
      await context.dispose();
    }
  },
});
