// `pocketci init`: the starter pipeline runs and type-checks, its deno.json lets an editor
// (the Deno language server, emulated by a plain `deno check`) resolve the bare import, and
// existing files are never overwritten without --force.
import assert from "node:assert/strict";
import { type CliResult, runCli } from "./helpers/cli.ts";

const MOD_URL = new URL("../mod.ts", import.meta.url).href;

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-init-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `deno check` as an editor sees the file: the config found next to it, not PocketCI's. */
async function editorCheck(dir: string): Promise<CliResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--quiet", "ci.ts"],
    cwd: dir,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function assertOneLineUsageError(result: CliResult, pattern: RegExp): void {
  assert.equal(result.code, 2, result.stderr);
  assert.equal(result.stdout, "");
  assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  assert.match(result.stderr, pattern);
}

Deno.test("pocketci init writes ci.ts and a deno.json the editor resolves pocketci with", async () => {
  await withTempDir(async (dir) => {
    const result = await runCli(["init"], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^wrote \.\/ci\.ts and \.\/deno\.json .*pocketci run \.\/ci\.ts$/m);
    const config = JSON.parse(await Deno.readTextFile(`${dir}/deno.json`));
    assert.deepEqual(config, { imports: { pocketci: MOD_URL } });
    assert.match(await Deno.readTextFile(`${dir}/ci.ts`), /^import .* from "pocketci";$/m);

    const checked = await runCli(["check", "ci.ts"], { cwd: dir });
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    const ran = await runCli(["run", "ci.ts", "--driver=native", "--state-dir", `${dir}/.state`], {
      cwd: dir,
    });
    assert.equal(ran.code, 0, ran.stdout + ran.stderr);
    assert.match(ran.stdout, /hello from native/);

    const editor = await editorCheck(dir);
    assert.equal(editor.code, 0, editor.stderr);
    // Without the deno.json the editor cannot resolve the bare import.
    await Deno.remove(`${dir}/deno.json`);
    const unresolved = await editorCheck(dir);
    assert.notEqual(unresolved.code, 0);
    assert.match(unresolved.stderr, /pocketci/);
  });
});

Deno.test("pocketci init DIR creates the directory", async () => {
  await withTempDir(async (dir) => {
    const result = await runCli(["init", `${dir}/a/b/`]);
    assert.equal(result.code, 0, result.stderr);
    assert.ok((await Deno.stat(`${dir}/a/b/ci.ts`)).isFile);
    assert.ok((await Deno.stat(`${dir}/a/b/deno.json`)).isFile);
  });
});

Deno.test("pocketci init never overwrites without --force, naming the file in one line", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/deno.json`, '{"tasks": {}}\n');
    assertOneLineUsageError(
      await runCli(["init", dir]),
      new RegExp(
        `^pocketci init: ${dir}/deno\\.json already exists; pass --force to overwrite it$`,
        "m",
      ),
    );
    assert.equal(await Deno.readTextFile(`${dir}/deno.json`), '{"tasks": {}}\n');
    await assert.rejects(() => Deno.stat(`${dir}/ci.ts`), Deno.errors.NotFound);

    const forced = await runCli(["init", "--force", dir]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/deno.json`)), {
      imports: { pocketci: MOD_URL },
    });
    assertOneLineUsageError(
      await runCli(["init", dir]),
      /ci\.ts and .*deno\.json already exist; pass --force to overwrite them$/m,
    );
  });
});

Deno.test("pocketci init --force replaces a symlink instead of writing through it", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/project`);
    await Deno.writeTextFile(`${dir}/outside.ts`, "keep me\n");
    await Deno.symlink(`${dir}/outside.ts`, `${dir}/project/ci.ts`);
    assertOneLineUsageError(
      await runCli(["init", `${dir}/project`]),
      /project\/ci\.ts already exists; pass --force/,
    );
    const forced = await runCli(["init", "--force", `${dir}/project`]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(await Deno.readTextFile(`${dir}/outside.ts`), "keep me\n");
    assert.ok((await Deno.lstat(`${dir}/project/ci.ts`)).isFile);
  });
});

Deno.test("pocketci init: bad arguments are one line, exit 2", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "");
    assertOneLineUsageError(
      await runCli(["init", `${dir}/file`]),
      /^pocketci init: .*\/file is not a directory/,
    );
    assertOneLineUsageError(await runCli(["init", "a", "b"]), /expected at most one directory/);
    assertOneLineUsageError(await runCli(["init", "--bogus"]), /unknown option --bogus/);
    assertOneLineUsageError(await runCli(["init", ""]), /the directory is empty/);
  });
  const help = await runCli(["init", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: pocketci init \[DIR\] \[--force\]/);
});
