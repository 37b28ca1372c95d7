import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// @ts-types="npm:@types/ssh2@^1"
import { utils } from "ssh2";
import { generateEd25519KeyPair } from "./keygen.ts";

const data = Buffer.from("sign me");

Deno.test("keygen: 3000 pairs all parse, sign and verify (ssh2's generator fails ~1 in 400)", () => {
  const failures: string[] = [];
  for (let i = 0; i < 3000; i++) {
    const pair = generateEd25519KeyPair(`k${i}`);
    const priv = utils.parseKey(pair.privateKey);
    const pub = utils.parseKey(pair.publicKey);
    if (priv instanceof Error || pub instanceof Error) {
      failures.push(
        `${i}: ${priv instanceof Error ? priv.message : ""} ${
          pub instanceof Error ? pub.message : ""
        }`,
      );
      continue;
    }
    const signature = priv.sign(data);
    if (pub.verify(data, signature) !== true) failures.push(`${i}: signature does not verify`);
    if (!priv.getPublicSSH().equals(pub.getPublicSSH())) failures.push(`${i}: public keys differ`);
    if (pub.comment !== `k${i}` && priv.comment !== `k${i}`) failures.push(`${i}: comment lost`);
  }
  assert.deepEqual(failures.slice(0, 5), []);
});

Deno.test("keygen: OpenSSH's ssh-keygen reads the private key and derives the same public key", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (let i = 0; i < 5; i++) {
      const pair = generateEd25519KeyPair("pocketci-test");
      await Deno.writeTextFile(`${dir}/key`, pair.privateKey, { mode: 0o600 });
      const out = await new Deno.Command("ssh-keygen", { args: ["-y", "-f", `${dir}/key`] })
        .output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      const derived = new TextDecoder().decode(out.stdout).trim().split(" ").slice(0, 2).join(" ");
      assert.equal(derived, pair.publicKey.split(" ").slice(0, 2).join(" "));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
