/**
 * The cloud-init path end to end on a real guest: a debootstrapped Debian with cloud-init and
 * qemu-guest-agent (`.ci/setup_qemu_cloud.sh`) boots from the driver's overlay with the
 * driver's own NoCloud seed ISO. cloud-init must find the seed by its label, run its user-data
 * (SSH key for the default user, no password logins, the agent, the 9p mounts), and the driver
 * must wait until cloud-init is done before the first task runs. Takes a couple of minutes
 * under TCG.
 *
 * @module
 */

import assert from "node:assert/strict";
import { qemuConfig } from "../../drivers/qemu/config.ts";
import { createQemuDriver } from "../../drivers/qemu/driver.ts";
import { processStartTime } from "../../drivers/native/proc_stat.ts";
import { generateEd25519KeyPair } from "../../drivers/ssh/keygen.ts";
import { createTestContext } from "../conformance/context.ts";
import { cloudGuestConfig, cloudGuestProblem } from "./cloud_guest_fixture.ts";
import { guestProblem } from "./guest_fixture.ts";

const problem = (await guestProblem()) ?? (await cloudGuestProblem());
const ignore = problem !== undefined && Deno.env.get("CI") !== "true";

Deno.test({
  name:
    "qemu cloud-init: the driver's seed ISO configures a real cloud-init guest, and tasks run after cloud-init is done",
  ignore,
  sanitizeResources: false,
  fn: async () => {
    if (problem) throw new Error(problem);
    const ctx = await createTestContext();
    const keyDir = await Deno.makeTempDir({ prefix: "pocketci-cloud-key-" });
    const key = generateEd25519KeyPair("pocketci-cloud-test").publicKey.trim();
    await Deno.writeTextFile(`${keyDir}/id.pub`, `${key}\n`);
    const lines: string[] = [];
    const driver = await createQemuDriver(
      qemuConfig(cloudGuestConfig({ ssh_key: `${keyDir}/id.pub` })),
      ctx,
      { progress: (line) => lines.push(line) },
    );
    try {
      const out: string[] = [];
      const decoder = new TextDecoder();
      const script = [
        "echo status=$(cloud-init status | sed -n 's/^status: //p')",
        "echo datasource=$(cat /run/cloud-init/cloud-id 2>/dev/null)",
        'grep -h -i -E "warn|error|fail" /var/log/cloud-init.log | tail -n 12 >&2',
        "echo keys=$(cat /home/*/.ssh/authorized_keys)",
        "echo runcmd=$(grep -c 'mount -t 9p' /var/lib/cloud/instance/scripts/runcmd)",
        "echo agent=$(systemctl is-active qemu-guest-agent)",
        "echo mounts=$(grep ' 9p ' /proc/mounts | cut -d' ' -f2 | sort | tr '\\n' ' ')",
      ].join("; ");
      const handle = await driver.startTask(
        { id: "t1", name: "cloud", command: ["sh", "-c", script], env: {}, mounts: [] },
        (_stream, chunk) => out.push(decoder.decode(chunk)),
      );
      const status = await handle.wait();
      const text = out.join("");
      assert.equal(status.code, 0, text);
      assert.match(text, /^status=done$/m, `${text}\n${lines.join("\n")}`);
      assert.match(text, /^datasource=nocloud$/m, text);
      assert.ok(text.includes(`keys=${key}`), `the ssh_key= key was not authorized:\n${text}`);
      assert.match(text, /^runcmd=\d+$/m);
      assert.doesNotMatch(text, /^runcmd=0$/m, "the seed's 9p mounts are not in the runcmd");
      assert.match(text, /^agent=active$/m);
      assert.match(text, /\/mnt\/pocketci/, "the run's 9p share is not mounted");
      const progress = lines.join("\n");
      assert.match(
        progress,
        /qemu: guest agent ready \([\d.]+ s\)\nqemu: cloud-init done \(DataSourceNoCloud[^)]*\) \([\d.]+ s\)/,
        progress,
      );
      const vm = ctx.recorded.find((resource) => resource.kind === "vm")!;
      const report = await driver.close();
      assert.deepEqual(report.failed, []);
      assert.equal(await processStartTime(Number(vm.id)), undefined, "QEMU still runs");
      assert.deepEqual([...ctx.live.values()], []);
      for (const dir of ctx.recorded.filter((resource) => resource.kind === "dir")) {
        assert.equal(await Deno.stat(dir.id).then(() => true, () => false), false, dir.id);
      }
    } finally {
      await driver.close();
      await ctx.dispose();
      await Deno.remove(keyDir, { recursive: true });
    }
  },
});
