/**
 * The keys the machine drivers hold: one client key pair per namespace (what the provider
 * authorizes on every machine of the pool) and one host key pair per machine (generated here,
 * handed to the machine in its user_data, and the only key the SSH connection accepts). All of it
 * lives in the state directory under `machines/<driver>/<namespace>/`, private files mode 0600.
 *
 * @module
 */

// @ts-types="npm:@types/ssh2@^1"
import { utils } from "ssh2";
import { createHash } from "node:crypto";
import { generateEd25519KeyPair } from "../ssh/keygen.ts";
import { safeNamespace } from "./provider.ts";

/** An OpenSSH key pair. */
export interface KeyPair {
  /** The private key (OpenSSH format). */
  readonly privateKey: string;
  /** The public key line (`ssh-ed25519 AAAA... comment`). */
  readonly publicKey: string;
}

/** Generates an ed25519 key pair in OpenSSH formats. */
export function generateKeyPair(comment: string): KeyPair {
  return generateEd25519KeyPair(comment);
}

/** A short fingerprint of a public key (12 hex digits of SHA-256), fit for a tag or label. */
export function keyTag(publicKey: string): string {
  const blob = publicKey.trim().split(/\s+/)[1] ?? "";
  return createHash("sha256").update(blob).digest("hex").slice(0, 12);
}

/** Where a namespace's keys live. */
export function keyDir(stateDir: string, driver: string, namespace: string): string {
  return `${stateDir}/machines/${driver}/${safeNamespace(namespace)}`;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * The namespace's client key pair, or undefined when this host holds none or only an unusable
 * one (a file that does not parse, as earlier versions' generator wrote about once in 400 keys,
 * or halves that do not match): the caller then makes a new pair.
 */
export async function loadClientKey(dir: string): Promise<KeyPair | undefined> {
  const [privateKey, publicKey] = await Promise.all([
    readOptional(`${dir}/id_ed25519`),
    readOptional(`${dir}/id_ed25519.pub`),
  ]);
  if (!privateKey || !publicKey) return undefined;
  const priv = utils.parseKey(privateKey);
  const pub = utils.parseKey(publicKey.trim());
  if (priv instanceof Error || pub instanceof Error) return undefined;
  if (!priv.getPublicSSH().equals(pub.getPublicSSH())) return undefined;
  return { privateKey, publicKey: publicKey.trim() };
}

/** Writes a new client key pair for the namespace (private key mode 0600). */
export async function createClientKey(dir: string, comment: string): Promise<KeyPair> {
  await Deno.mkdir(`${dir}/hosts`, { recursive: true, mode: 0o700 });
  const pair = generateKeyPair(comment);
  await Deno.writeTextFile(`${dir}/id_ed25519.tmp`, pair.privateKey, { mode: 0o600 });
  await Deno.chmod(`${dir}/id_ed25519.tmp`, 0o600);
  await Deno.writeTextFile(`${dir}/id_ed25519.pub`, `${pair.publicKey}\n`);
  await Deno.rename(`${dir}/id_ed25519.tmp`, `${dir}/id_ed25519`);
  return pair;
}

/** Removes the namespace's client key files. */
export async function removeClientKey(dir: string): Promise<void> {
  for (const file of ["id_ed25519", "id_ed25519.pub"]) {
    await Deno.remove(`${dir}/${file}`).catch(() => {});
  }
}

/** Records the host public key a machine was given (before it is created). */
export async function saveHostKey(dir: string, machine: string, publicKey: string): Promise<void> {
  await Deno.mkdir(`${dir}/hosts`, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(`${dir}/hosts/${machine}.pub`, `${publicKey}\n`);
}

/** The host public key recorded for a machine, if this host created it. */
export async function loadHostKey(dir: string, machine: string): Promise<string | undefined> {
  return (await readOptional(`${dir}/hosts/${machine}.pub`))?.trim();
}

/** Forgets a machine's host key. */
export async function removeHostKey(dir: string, machine: string): Promise<void> {
  await Deno.remove(`${dir}/hosts/${machine}.pub`).catch(() => {});
}

/** The raw key blob of a public key line. */
export function publicKeyBlob(publicKey: string): Uint8Array {
  const b64 = publicKey.trim().split(/\s+/)[1] ?? "";
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}
