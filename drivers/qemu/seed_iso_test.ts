import assert from "node:assert/strict";
import { DriverError } from "../contract.ts";
import { findIsoTool, makeSeedIso, userData } from "./seed_iso.ts";

const SHARES = [{ tag: "pocketci", mountPoint: "/mnt/pocketci" }];

Deno.test("seed: user-data installs and starts the guest agent and mounts the 9p shares", () => {
  const text = userData(SHARES);
  assert.match(text, /^#cloud-config\n/);
  assert.match(text, /packages: \[qemu-guest-agent\]/);
  assert.match(text, /systemctl, enable, --now, qemu-guest-agent/);
  assert.match(
    text,
    /mount -t 9p -o trans=virtio,version=9p2000\.L,msize=\d+ pocketci \/mnt\/pocketci/,
  );
});

// Needs genisoimage, mkisofs or xorriso (.ci/setup_qemu.sh installs genisoimage); in CI a
// missing tool fails the test instead of skipping it.
const noTool = (await findIsoTool()) === undefined && Deno.env.get("CI") !== "true";

Deno.test({
  name: "seed: the ISO is labelled cidata and holds meta-data with the instance ID",
  ignore: noTool,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "pocketci-seed-test-" });
    try {
      const iso = await makeSeedIso(dir, "pocketci-run-42", SHARES);
      const bytes = await Deno.readFile(iso);
      // The primary volume descriptor at sector 16: its volume identifier at offset 40.
      const label = new TextDecoder().decode(bytes.subarray(32768 + 40, 32768 + 72)).trim();
      assert.equal(label, "cidata");
      const text = new TextDecoder("latin1").decode(bytes);
      assert.ok(text.includes("instance-id: pocketci-run-42"), "meta-data is not in the image");
      assert.ok(text.includes("packages: [qemu-guest-agent]"), "user-data is not in the image");
      assert.deepEqual(
        await Array.fromAsync(Deno.readDir(dir), (entry) => entry.name),
        ["seed.iso"],
        "the scratch files were left behind",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("seed: without genisoimage, mkisofs or xorriso the error is one line naming them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-seed-test-" });
  try {
    await assert.rejects(
      () => makeSeedIso(dir, "x", SHARES, dir),
      (error: unknown) =>
        error instanceof DriverError && error.code === "unavailable" &&
        /genisoimage, mkisofs or xorriso/.test(error.message) &&
        /apt install genisoimage/.test(error.message) && !error.message.includes("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
