import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  checkHostKey,
  fingerprint,
  hostFieldMatches,
  hostLookupName,
  keyTypeOf,
  parseKnownHosts,
} from "./known_hosts.ts";

// A real ed25519 host key, and known_hosts lines hashed by `ssh-keygen -H` (OpenSSH 9.2) for
// `[127.0.0.1]:2222` and `example.org`.
const KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOFbDMMHWNHY46oFDBnDK0Qvtm85xYPoB+4eZ+apyyZk";
const BLOB = new Uint8Array(Buffer.from(KEY, "base64"));
const OTHER = "AAAAC3NzaC1lZDI1NTE5AAAAIEHAuVgbe0Y0BCF3hN7Zx3k3N1yQyDC9vMKtEgz3HhR6";
const HASHED_PORT = "|1|RBaTx6yss8+M0vlAWhXbiGwAraU=|CMWGjI3HXDGG1KCk+Hm63JBeaOg=";
const HASHED_NAME = "|1|6TWhrRzbYfu0A862UzTtDeumNHU=|JSaVTbUeUCyt5xRlcBDnjYlYz9g=";

Deno.test("known_hosts: lookup names use [host]:port except on port 22", () => {
  assert.equal(hostLookupName("example.org", 22), "example.org");
  assert.equal(hostLookupName("127.0.0.1", 2222), "[127.0.0.1]:2222");
});

Deno.test("known_hosts: hashed host fields match the names ssh-keygen hashed, and nothing else", () => {
  assert.ok(hostFieldMatches(HASHED_PORT, "[127.0.0.1]:2222"));
  assert.ok(!hostFieldMatches(HASHED_PORT, "127.0.0.1"));
  assert.ok(!hostFieldMatches(HASHED_PORT, "[127.0.0.1]:2223"));
  assert.ok(hostFieldMatches(HASHED_NAME, "example.org"));
  assert.ok(!hostFieldMatches(HASHED_NAME, "example.com"));
});

Deno.test("known_hosts: patterns, wildcards and negation", () => {
  assert.ok(hostFieldMatches("a.example,b.example", "b.example"));
  assert.ok(hostFieldMatches("*.example.org", "ci.example.org"));
  assert.ok(hostFieldMatches("host?", "host1"));
  assert.ok(!hostFieldMatches("host?", "host12"));
  assert.ok(!hostFieldMatches("*.example.org,!bad.example.org", "bad.example.org"));
  assert.ok(hostFieldMatches("[10.0.0.*]:2222", "[10.0.0.7]:2222"));
  assert.ok(hostFieldMatches("EXAMPLE.org", "example.org"), "host names are case-insensitive");
});

Deno.test("known_hosts: trusted, unknown, changed and revoked verdicts", () => {
  const entries = parseKnownHosts(
    [
      "# comment",
      "",
      `${HASHED_PORT} ssh-ed25519 ${KEY}`,
      `changed.example ssh-ed25519 ${OTHER}`,
      `other-type.example ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ`,
      `@revoked revoked.example ssh-ed25519 ${KEY}`,
      `revoked.example ssh-ed25519 ${KEY}`,
      "malformed-line",
    ].join("\n"),
    "/k",
  );
  assert.equal(entries.length, 5);
  assert.deepEqual(checkHostKey(entries, "127.0.0.1", 2222, BLOB), {
    status: "trusted",
    source: "/k:3",
  });
  assert.deepEqual(checkHostKey(entries, "127.0.0.1", 22, BLOB), { status: "unknown" });
  assert.deepEqual(checkHostKey(entries, "changed.example", 22, BLOB), {
    status: "changed",
    source: "/k:4",
  });
  // An entry for another key type only is not a changed key: OpenSSH also treats it as unknown.
  assert.deepEqual(checkHostKey(entries, "other-type.example", 22, BLOB), { status: "unknown" });
  assert.deepEqual(checkHostKey(entries, "revoked.example", 22, BLOB), {
    status: "revoked",
    source: "/k:6",
  });
});

Deno.test("known_hosts: key type and fingerprint as ssh-keygen prints them", () => {
  assert.equal(keyTypeOf(BLOB), "ssh-ed25519");
  assert.equal(fingerprint(BLOB), "SHA256:p2yqaqna2Cs4lQs5sDRYFL8Ds2lrHdENHaiMZ39ypvU");
});
