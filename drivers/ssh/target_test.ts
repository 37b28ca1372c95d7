import assert from "node:assert/strict";
import { DriverError } from "../contract.ts";
import { formatTarget, parseSshUrl } from "./target.ts";

Deno.test("ssh target: user, host and port with defaults", () => {
  assert.deepEqual(parseSshUrl("ssh://deploy@ci.example.org:2222"), {
    user: "deploy",
    host: "ci.example.org",
    port: 2222,
  });
  assert.deepEqual(parseSshUrl("ssh://ci.example.org", "alice"), {
    user: "alice",
    host: "ci.example.org",
    port: 22,
  });
  assert.deepEqual(parseSshUrl("ssh://root@[::1]:22/"), { user: "root", host: "::1", port: 22 });
  assert.equal(formatTarget({ user: "root", host: "::1", port: 22 }), "root@[::1]:22");
});

Deno.test("ssh target: paths, passwords and other schemes are refused with one line", () => {
  for (
    const bad of [
      "ssh://root@host/var/run/docker.sock",
      "ssh://root:secret@host/x",
      "tcp://host:22",
      "ssh://",
    ]
  ) {
    assert.throws(() => parseSshUrl(bad), (error: unknown) => {
      assert.ok(error instanceof DriverError);
      assert.equal(error.code, "invalid");
      assert.ok(!error.message.includes("\n"));
      assert.ok(!error.message.includes("secret"), "never echo a password");
      return true;
    });
  }
});
