/**
 * Host-key checking against OpenSSH `known_hosts` files: plain and hashed (`|1|salt|hash`) host
 * fields, `[host]:port` for non-default ports, `*`/`?` wildcards, `!` negation and `@revoked`.
 * An unknown or changed key is refused; the caller turns the verdict into a clear error.
 *
 * @module
 */

import { createHash, createHmac } from "node:crypto";
import { Buffer } from "node:buffer";

/** One usable line of a known_hosts file. */
export interface KnownHostEntry {
  /** The host field: comma-separated patterns, or one hashed `|1|salt|hash` field. */
  readonly hosts: string;
  /** `@revoked` marks a key that must never be accepted; `@cert-authority` lines are kept but never match a plain key. */
  readonly marker?: "revoked" | "cert-authority";
  /** The key type, such as `ssh-ed25519`. */
  readonly keyType: string;
  /** The base64 key blob. */
  readonly key: string;
  /** Where it came from, for messages (`file:line`). */
  readonly source: string;
}

/** The outcome of a host-key check. */
export type HostKeyVerdict =
  | { readonly status: "trusted"; readonly source: string }
  | { readonly status: "unknown" }
  | { readonly status: "changed"; readonly source: string }
  | { readonly status: "revoked"; readonly source: string };

/** Parses the text of a known_hosts file; malformed lines are ignored, as OpenSSH does. */
export function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry["marker"];
    if (fields[0] === "@revoked" || fields[0] === "@cert-authority") {
      marker = fields[0] === "@revoked" ? "revoked" : "cert-authority";
      fields.shift();
    } else if (fields[0].startsWith("@")) return;
    if (fields.length < 3) return;
    entries.push({
      hosts: fields[0],
      marker,
      keyType: fields[1],
      key: fields[2],
      source: `${file}:${index + 1}`,
    });
  });
  return entries;
}

/** The name OpenSSH looks up for a host: `host` on port 22, `[host]:port` otherwise. */
export function hostLookupName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(
    /\?/g,
    ".",
  );
  return new RegExp(`^${escaped}$`, "i");
}

function hashedMatches(field: string, name: string): boolean {
  const parts = field.split("|");
  if (parts.length !== 4 || parts[1] !== "1") return false;
  const salt = Buffer.from(parts[2], "base64");
  const digest = createHmac("sha1", salt).update(name).digest("base64");
  return digest === parts[3];
}

/** Whether a host field (patterns or one hashed name) names `name`. */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith("|")) return hashedMatches(field, name);
  let matched = false;
  for (const pattern of field.split(",")) {
    if (pattern.startsWith("!")) {
      if (globToRegExp(pattern.slice(1)).test(name)) return false;
    } else if (globToRegExp(pattern).test(name)) matched = true;
  }
  return matched;
}

/** The key type stored at the start of an SSH public key blob. */
export function keyTypeOf(blob: Uint8Array): string {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (blob.length < 4) return "";
  const length = view.getUint32(0);
  return new TextDecoder().decode(blob.subarray(4, 4 + length));
}

/** OpenSSH's fingerprint of a key blob: `SHA256:` and unpadded base64. */
export function fingerprint(blob: Uint8Array): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/**
 * Checks the key a server presented. A host with entries for the same key type but none with
 * this key is "changed" (possible man-in-the-middle); a host with no entry is "unknown".
 */
export function checkHostKey(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  blob: Uint8Array,
): HostKeyVerdict {
  const name = hostLookupName(host, port);
  const presented = Buffer.from(blob).toString("base64");
  const type = keyTypeOf(blob);
  let changed: string | undefined;
  let trusted: string | undefined;
  for (const entry of entries) {
    if (!hostFieldMatches(entry.hosts, name)) continue;
    if (entry.marker === "revoked") {
      if (entry.key === presented) return { status: "revoked", source: entry.source };
      continue;
    }
    if (entry.marker === "cert-authority") continue;
    if (entry.key === presented) trusted ??= entry.source;
    else if (entry.keyType === type) changed ??= entry.source;
  }
  if (trusted) return { status: "trusted", source: trusted };
  if (changed) return { status: "changed", source: changed };
  return { status: "unknown" };
}
