import assert from "node:assert/strict";
import { VERSION } from "../version.ts";
import { type CliResult, runCli } from "./helpers/cli.ts";

function pocketci(...args: string[]): Promise<CliResult> {
  return runCli(args);
}

Deno.test("version.ts matches deno.json", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(VERSION, config.version);
});

Deno.test("pocketci --version prints the version", async () => {
  const result = await pocketci("--version");
  assert.equal(result.code, 0);
  assert.equal(result.stdout.trim(), `pocketci ${VERSION}`);
});

Deno.test("pocketci --help lists every command", async () => {
  const result = await pocketci("--help");
  assert.equal(result.code, 0);
  for (const command of ["run", "check", "dsn", "drivers", "permissions", "gc", "init"]) {
    assert.match(result.stdout, new RegExp(`^  ${command} `, "m"));
  }
});

Deno.test("pocketci with no arguments prints help and exits 2", async () => {
  const result = await pocketci();
  assert.equal(result.code, 2);
  assert.match(result.stdout, /Usage:/);
});

Deno.test("an unknown command is one line naming the known commands, exit 2", async () => {
  const result = await pocketci("frobnicate");
  assert.equal(result.code, 2);
  assert.equal(result.stdout, "");
  assert.equal(result.stderr.trim().split("\n").length, 1);
  assert.match(result.stderr, /unknown command "frobnicate".*run, check, dsn/);
});

Deno.test("a misspelt command suggests the closest one: pocketci rn → run", async () => {
  for (const [typo, command] of [["rn", "run"], ["chekc", "check"], ["drivrs", "drivers"]]) {
    const result = await pocketci(typo);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, "");
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`^pocketci: unknown command "${typo}" \\(did you mean "${command}"\\?\\); known`),
    );
  }
  assert.doesNotMatch((await pocketci("frobnicate")).stderr, /did you mean/);
});
