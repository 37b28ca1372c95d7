import assert from "node:assert/strict";
import { parseSecretFile, secretsFromEnv, shortSecrets } from "./secrets.ts";

Deno.test("secret file: plain, quoted, multi-line, export prefix and comments", () => {
  const secrets = parseSecretFile(
    [
      "# comment",
      "PLAIN=abc def",
      'QUOTED="line1\\nline2"',
      "export SINGLE='x\\ny'",
      "",
    ].join("\n"),
    "s.env",
  );
  assert.equal(secrets.get("PLAIN"), "abc def");
  assert.equal(secrets.get("QUOTED"), "line1\nline2");
  assert.equal(secrets.get("SINGLE"), "x\\ny");
});

Deno.test("secret file: a bad line names the line, never the value", () => {
  assert.throws(
    () => parseSecretFile("GOOD=1\nnot a pair super-secret-value", "s.env"),
    (error: Error) => /s\.env:2/.test(error.message) && !error.message.includes("super-secret"),
  );
});

Deno.test("--secret NAME reads the environment and names a missing variable", () => {
  assert.deepEqual(
    secretsFromEnv(["A"], (name) => name === "A" ? "v" : undefined),
    new Map([["A", "v"]]),
  );
  assert.throws(() => secretsFromEnv(["MISSING"], () => undefined), /--secret MISSING/);
  assert.throws(() => secretsFromEnv(["bad-name"], () => "x"), /letters, digits/);
});

Deno.test("short secrets are named (never shown), from the secrets and from the driver string", () => {
  const secrets = new Map([["LONG", "long-enough"], ["SHORT", "x-r"], ["EMPTY", ""]]);
  assert.deepEqual(shortSecrets(secrets), [
    "secret SHORT is shorter than 6 characters, too short to mask reliably",
  ]);
  const both = shortSecrets(new Map([["FIVE", "12345"], ["SIX", "123456"]]), ["pw", "long-token"]);
  assert.equal(both.length, 2);
  assert.match(both[0], /^secret FIVE /);
  assert.match(both[1], /^a secret of the driver \(a token or URL password/);
  assert.ok(!both.join(" ").includes("12345") && !both.join(" ").includes("pw"));
  assert.deepEqual(shortSecrets(new Map([["OK", "abcdef"]]), ["abcdef"]), []);
});
