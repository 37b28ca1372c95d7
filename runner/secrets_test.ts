import assert from "node:assert/strict";
import { parseSecretFile, secretsFromEnv } from "./secrets.ts";

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
