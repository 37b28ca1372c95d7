import assert from "node:assert/strict";
import { DriverError } from "../contract.ts";
import { findIsoTool, makeSeedIso, readSshKeys, userData } from "./seed_iso.ts";

const SHARES = [{ tag: "pocketci", mountPoint: "/mnt/pocketci" }];

Deno.test("seed: user-data installs (when missing) and starts the guest agent and mounts the 9p shares", () => {
  const text = userData(SHARES);
  assert.match(text, /^#cloud-config\n/);
  assert.match(text, /command -v qemu-ga >\/dev\/null 2>&1 \|\| \{ command -v apt-get/);
  assert.match(text, /apt-get install -y -q qemu-guest-agent/);
  assert.match(text, /systemctl, enable, --now, qemu-guest-agent/);
  assert.match(text, /^ssh_pwauth: false$/m);
  assert.doesNotMatch(text, /ssh_authorized_keys|password|chpasswd/);
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
      assert.ok(text.includes("ssh_pwauth: false"), "user-data is not in the image");
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
      () => makeSeedIso(dir, "x", SHARES, [], dir),
      (error: unknown) =>
        error instanceof DriverError && error.code === "unavailable" &&
        /genisoimage, mkisofs or xorriso/.test(error.message) &&
        /apt install genisoimage/.test(error.message) && !error.message.includes("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvWq3rJ1r3z1x0mM1gq2fJ2Hk7p0b6cQzqYV0n3V3xQ ci@host";

Deno.test("seed: ssh_key= public keys are authorized for the default user, written as YAML-safe strings", () => {
  const text = userData(SHARES, [KEY, 'ecdsa-sha2-nistp256 AAAAE2Vj= quote"and: colon']);
  assert.match(text, /^ssh_authorized_keys:\n {2}- "ssh-ed25519 AAAA[^"]+ ci@host"\n/m);
  assert.ok(text.includes('  - "ecdsa-sha2-nistp256 AAAAE2Vj= quote\\"and: colon"'));
});

Deno.test("seed: readSshKeys takes each key line, skips comments and blank lines", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-seed-test-" });
  try {
    await Deno.writeTextFile(
      `${dir}/keys.pub`,
      `# mine\n\n${KEY}\r\nsk-ssh-ed25519@openssh.com AAAA= yubi\n`,
    );
    assert.deepEqual(await readSshKeys(`${dir}/keys.pub`), [
      KEY,
      "sk-ssh-ed25519@openssh.com AAAA= yubi",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("seed: a private key, an empty file or a missing file given as ssh_key= is one line that never prints the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-seed-test-" });
  try {
    const secret = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW";
    await Deno.writeTextFile(
      `${dir}/id_ed25519`,
      `-----BEGIN OPENSSH PRIVATE KEY-----\n${secret}\n-----END OPENSSH PRIVATE KEY-----\n`,
    );
    await Deno.writeTextFile(`${dir}/empty.pub`, "# nothing\n");
    const cases: [string, RegExp][] = [
      [
        `${dir}/id_ed25519`,
        /is not an OpenSSH public key file \(line 1 is not "TYPE BASE64 \[COMMENT\]"\); give the \.pub file/,
      ],
      [`${dir}/empty.pub`, /is not an OpenSSH public key file \(no key in it\)/],
      [`${dir}/missing.pub`, /cannot read the SSH public key ssh_key=/],
    ];
    for (const [path, expected] of cases) {
      await assert.rejects(() => readSshKeys(path), (error: unknown) => {
        assert.ok(error instanceof DriverError);
        assert.match(error.message, expected);
        assert.ok(error.message.includes(`ssh_key=${path}`));
        assert.ok(!error.message.includes(secret) && !error.message.includes("PRIVATE"));
        assert.ok(!error.message.includes("\n"));
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
