/**
 * Ed25519 key pairs in OpenSSH's formats (`openssh-key-v1` private key, `ssh-ed25519 AAAA…`
 * public line), written from the raw key bytes. ssh2's own generator goes through the runtime's
 * DER export, which under Deno yields an unparsable key about once in 400 pairs: a machine given
 * such a key as its client or host key can never be reached.
 *
 * @module
 */

import { generateKeyPairSync, randomBytes } from "node:crypto";
import { Buffer } from "node:buffer";

/** An OpenSSH key pair. */
export interface OpenSshKeyPair {
  /** The private key, `-----BEGIN OPENSSH PRIVATE KEY-----` armored, unencrypted. */
  readonly privateKey: string;
  /** The public key line (`ssh-ed25519 AAAA... comment`). */
  readonly publicKey: string;
}

const KEY_TYPE = "ssh-ed25519";

function sshString(data: Uint8Array | string): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function uint32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value >>> 0);
  return bytes;
}

function rawKeys(): { seed: Buffer; pub: Buffer } {
  // The JWK export carries the 32-byte seed (d) and public key (x) as they are.
  const { privateKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" }) as { d?: string; x?: string };
  const seed = Buffer.from(jwk.d ?? "", "base64url");
  const pub = Buffer.from(jwk.x ?? "", "base64url");
  if (seed.length !== 32 || pub.length !== 32) {
    throw new Error(`ed25519 key generation returned ${seed.length}/${pub.length}-byte keys`);
  }
  return { seed, pub };
}

/** The SSH wire encoding of an ed25519 public key (what `ssh-ed25519 <base64>` carries). */
export function ed25519PublicBlob(pub: Uint8Array): Buffer {
  return Buffer.concat([sshString(KEY_TYPE), sshString(pub)]);
}

/** Generates an ed25519 key pair in OpenSSH formats. */
export function generateEd25519KeyPair(comment: string): OpenSshKeyPair {
  const { seed, pub } = rawKeys();
  const blob = ed25519PublicBlob(pub);
  const check = randomBytes(4);
  const secret = Buffer.concat([
    check,
    check,
    sshString(KEY_TYPE),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  // The private section is padded with 1, 2, 3, … to the cipher block size (8 for "none").
  const padding = Buffer.from(
    Array.from({ length: (8 - (secret.length % 8)) % 8 }, (_, i) => i + 1),
  );
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "binary"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    uint32(1),
    sshString(blob),
    sshString(Buffer.concat([secret, padding])),
  ]);
  const lines = body.toString("base64").match(/.{1,70}/g) ?? [];
  const privateKey = [
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    ...lines,
    "-----END OPENSSH PRIVATE KEY-----",
    "",
  ].join("\n");
  const publicKey = `${KEY_TYPE} ${blob.toString("base64")}${comment ? ` ${comment}` : ""}`;
  return { privateKey, publicKey };
}
