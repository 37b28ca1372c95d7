/**
 * qemu-specific behaviour beyond the conformance suites, on the test guest of
 * `.ci/setup_qemu.sh`: the boot timeout with the serial console in the error, the seed ISO, and
 * `gc` killing the VM of a run that died (by its recorded PID and start time) and removing its
 * directories.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DriverError, type ResourceRecord } from "../../drivers/contract.ts";
import { qemuConfig } from "../../drivers/qemu/config.ts";
import { createQemuDriver } from "../../drivers/qemu/driver.ts";
import { qemuFactory } from "../../drivers/qemu/factory.ts";
import { GuestCall } from "../../drivers/qemu/guest_call.ts";
import { Machine } from "../../drivers/qemu/machine.ts";
import { acquireSlot, slotRoot, tempDir } from "../../drivers/qemu/vm_slots.ts";
import { processStartTime } from "../../drivers/native/proc_stat.ts";
import { createTestContext } from "../conformance/context.ts";
import { assertGuest, guestConfig, ignoreQemu } from "./guest_fixture.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name: `qemu: ${name}`, ignore: ignoreQemu, fn });

Deno.test({ name: "qemu: the test guest is installed", ignore: ignoreQemu, fn: assertGuest });

async function alive(pid: number): Promise<boolean> {
  return (await processStartTime(pid)) !== undefined;
}

test("a guest whose agent never answers is killed after boot_timeout, the console's last lines in one line", async () => {
  const ctx = await createTestContext();
  const lines: string[] = [];
  // rdinit=/bin/sh: the guest boots to a shell on the console and never starts the agent.
  const config = qemuConfig(
    guestConfig({ append: "console=ttyS0 panic=-1 rdinit=/bin/sh", boot_timeout: "6s" }),
  );
  const driver = await createQemuDriver(config, ctx, { progress: (line) => lines.push(line) });
  try {
    const started = Date.now();
    const error = await driver.startTask(
      { id: "t1", name: "never", command: ["true"], env: {}, mounts: [] },
      () => {},
    ).then(() => undefined, (error: unknown) => error);
    assert.ok(error instanceof DriverError, String(error));
    assert.match(error.message, /did not answer within 6 s \(boot_timeout=\)/);
    // The kernel logs to the serial console (no "quiet"): its timestamped lines are there.
    assert.match(error.message, /last console lines: .*\[ *\d+\.\d+\]/);
    assert.ok(!error.message.includes("\n"), "the error is one line");
    assert.ok(Date.now() - started < 30_000);
    const vm = ctx.recorded.find((resource) => resource.kind === "vm");
    assert.ok(vm !== undefined, "the VM was not recorded");
    assert.equal(await alive(Number(vm.id)), false, "QEMU still runs after the boot timeout");
    assert.match(
      lines.join("\n"),
      /qemu: overlay on .*base\.qcow2[\s\S]*qemu: booting \(accel tcg/,
    );
    const report = await driver.close();
    assert.deepEqual(report.failed, []);
    assert.deepEqual([...ctx.live.values()], []);
    const slot = ctx.recorded.find((resource) => resource.detail?.role === "vm")!;
    assert.equal(await Deno.stat(slot.id).then(() => true, () => false), false);
  } finally {
    await driver.close();
    await ctx.dispose();
  }
});

test("gc kills the VM of a dead run by its recorded PID and start time and removes its directories", async () => {
  const ctx = await createTestContext();
  const driver = await createQemuDriver(qemuConfig(guestConfig()), ctx, { progress: () => {} });
  try {
    const handle = await driver.startTask(
      { id: "t1", name: "up", command: ["true"], env: {}, mounts: [] },
      () => {},
    );
    assert.equal((await handle.wait()).code, 0);
    const vm = ctx.recorded.find((resource) => resource.kind === "vm")!;
    const dirs = ctx.recorded.filter((resource) => resource.kind === "dir");
    assert.ok(vm.detail?.startTime, "no start time recorded");
    assert.equal(await alive(Number(vm.id)), true);
    // The seed ISO (cloud-init) sits next to the overlay in the VM's private directory.
    const slot = dirs.find((resource) => resource.detail?.role === "vm")!;
    assert.ok((await Deno.stat(`${slot.id}/seed.iso`)).size > 0);
    assert.equal((await Deno.stat(slot.id)).mode! & 0o777, 0o700);

    const maintenance = await qemuFactory.maintenance!(guestConfig(), ctx);
    // A recycled PID (another start time) is left alone.
    const impostor: ResourceRecord = { ...vm, detail: { ...vm.detail, startTime: "1" } };
    await assert.rejects(() => maintenance.removeResource(impostor), /left alone/);
    assert.equal(await alive(Number(vm.id)), true);
    // As after kill -9 of the runner: gc goes by the journal's records.
    await maintenance.removeResource(vm);
    for (let i = 0; i < 50 && await alive(Number(vm.id)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(await alive(Number(vm.id)), false, "gc did not kill the VM");
    for (const dir of dirs) await maintenance.removeResource(dir);
    for (const dir of dirs) {
      assert.equal(await Deno.stat(dir.id).then(() => true, () => false), false, dir.id);
    }
    // A directory without the driver's marker is refused.
    const foreign = await Deno.makeTempDir();
    await assert.rejects(
      () => maintenance.removeResource({ ...dirs[0], id: foreign }),
      /not a directory of the qemu driver/,
    );
    await Deno.remove(foreign);
  } finally {
    await driver.close();
    await ctx.dispose();
  }
});

test("without a 9p share the agent's captured output is the fallback (output at exit, status kept)", async () => {
  const dir = await acquireSlot(slotRoot(tempDir(), Deno.uid()), "fallback-test");
  const machine = await Machine.boot({
    config: qemuConfig(guestConfig()),
    dir,
    shares: [],
    instanceId: "fallback-test",
    progress: () => {},
    started: () => Promise.resolve(),
  });
  try {
    const run = async (script: string) => {
      const call = new GuestCall({ qga: machine.qga, name: "fallback" }, false);
      const out: string[] = [];
      const decoder = new TextDecoder();
      call.addSink((stream, chunk) => out.push(`${stream}:${decoder.decode(chunk)}`), false);
      await call.start(
        {
          baseDir: "/tmp/fallback",
          workDir: "",
          createWorkDir: true,
          mounts: [],
          command: ["sh", "-c", script],
        },
        ["PATH=/usr/bin:/bin"],
        undefined,
      );
      return { status: await call.status, out };
    };
    const plain = await run("echo out; echo err >&2; exit 3");
    assert.deepEqual(plain.status, { code: 3 });
    assert.deepEqual(plain.out.sort(), ["stderr:err\n", "stdout:out\n"]);
    const killed = await run("kill -9 $$");
    assert.deepEqual(killed.status, { code: 137, signal: 9 });
  } finally {
    await machine.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
