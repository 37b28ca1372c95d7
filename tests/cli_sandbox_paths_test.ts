import assert from "node:assert/strict";
import { runCli, tempProject } from "./helpers/cli.ts";

const SECRET_LINE = "root:$6$not-a-real-hash:20228:0:99999:7:::";

/** A project dir `d/` with a file outside it holding SECRET_LINE. */
async function sandbox(files: Record<string, string>) {
  const root = await Deno.realPath(await tempProject({ "outside/shadow": SECRET_LINE + "\n" }));
  for (const [path, content] of Object.entries(files)) {
    const full = `${root}/d/${path}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, content);
  }
  return { root, dir: `${root}/d`, env: { POCKETCI_STATE_DIR: `${root}/state` } };
}

const PIPELINE = `import { pipeline } from "pocketci";
export default pipeline("p", async () => {});
`;

for (const command of ["check", "run"]) {
  Deno.test(`${command}: an import of a file outside the directory prints no line of it`, async () => {
    const { root, dir, env } = await sandbox({
      "absolute.ts": `import "${"/"}${"etc/shadow"}";\n${PIPELINE}`,
      "outside.ts": `import "../outside/shadow";\n${PIPELINE}`,
    });
    await Deno.symlink("/", `${dir}/root`);
    const symlinked = `./root${root}/outside/shadow`;
    await Deno.writeTextFile(`${dir}/symlink.ts`, `import "${symlinked}";\n${PIPELINE}`);
    const shadowHead = (await Deno.readTextFile("/etc/shadow").catch(() => "")).split("\n")[0];
    const cases: [string, string, string][] = [
      ["absolute.ts", "/etc/shadow", "/etc/shadow"],
      ["outside.ts", "../outside/shadow", `${root}/outside/shadow`],
      ["symlink.ts", symlinked, `${root}/outside/shadow`],
    ];
    for (const [file, specifier, real] of cases) {
      const result = await runCli([command, `${dir}/${file}`], { env });
      const output = result.stdout + result.stderr;
      assert.equal(result.code, command === "check" ? 1 : 2, output);
      assert.ok(!output.includes(SECRET_LINE), output);
      assert.ok(!output.includes("not-a-real-hash"), output);
      if (shadowHead !== "") assert.ok(!output.includes(shadowHead), output);
      assert.ok(
        output.includes(`${dir}/${file}:1: import "${specifier}" refused: its real path ${real}`),
        output,
      );
    }
    await Deno.remove(root, { recursive: true });
  });
}

const OWN_LOCK = new URL("../deno.lock", import.meta.url).pathname;

Deno.test("check and run: no deno.lock is written and the pipeline directory's deno.json is not read", async () => {
  const lock = `{"version":"5","specifiers":{}}\n`;
  const { root, dir, env } = await sandbox({
    // ms is in Deno's cache (a dependency of PocketCI's own packages) but not in its deno.lock.
    "check.ts": `import ms from "npm:ms@2";\n${PIPELINE}export const _m = ms;\n`,
    "run.ts": `import { z } from "npm:zod@^4";\n${PIPELINE}export const _s = z.string();\n`,
    "deno.lock": lock,
    // Would point "pocketci" elsewhere if the project's config were read.
    "deno.json": `{"imports": {"pocketci": "./not_here.ts"}}\n`,
  });
  const ownLock = await Deno.readTextFile(OWN_LOCK);
  for (const command of ["check", "run"]) {
    const result = await runCli([command, `${dir}/${command}.ts`], { env });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(await Deno.readTextFile(`${dir}/deno.lock`), lock);
    assert.equal(
      await Deno.readTextFile(OWN_LOCK),
      ownLock,
      `${command} wrote PocketCI's deno.lock`,
    );
  }
  await Deno.remove(root, { recursive: true });
});

Deno.test("check and run: an uncached npm package is refused before any fetch, naming --allow-import", async () => {
  const { root, dir, env } = await sandbox({
    "pipeline.ts": `import "npm:pocketci-no-such-package@1";\n${PIPELINE}`,
  });
  const registryEnv = { ...env, NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/" };
  for (const command of ["check", "run"]) {
    const result = await runCli([command, `${dir}/pipeline.ts`], { env: registryEnv });
    assert.notEqual(result.code, 0);
    assert.match(
      result.stderr,
      new RegExp(
        `pocketci ${command}: ${dir}/pipeline.ts:1: import "npm:pocketci-no-such-package@1" refused: the package is not in Deno's cache and pipelines cannot fetch packages; allow it with --allow-import=npm:pocketci-no-such-package`,
      ),
    );
    assert.doesNotMatch(result.stderr, /127\.0\.0\.1:9\/pocketci-no-such-package/);
  }
  await Deno.remove(root, { recursive: true });
});

Deno.test("check: a default export that is not a pipeline fails with run's message", async () => {
  const { root, dir, env } = await sandbox({
    "number.ts": "export default 42;\n",
    "none.ts": "export const x = 1;\n",
    "function.ts": "export default async () => {};\n",
  });
  const run = await runCli(["run", `${dir}/number.ts`], { env });
  assert.equal(run.code, 2);
  const message = /cannot load the pipeline: (.*)$/m.exec(run.stdout + run.stderr)?.[1];
  assert.ok(message?.includes("no default export"), run.stdout + run.stderr);
  for (const file of ["number.ts", "none.ts"]) {
    const check = await runCli(["check", `${dir}/${file}`], { env });
    assert.equal(check.code, 1);
    assert.equal(check.stderr, `pocketci check: ${message}\n`);
  }
  assert.equal((await runCli(["check", `${dir}/function.ts`], { env })).code, 0);
  await Deno.remove(root, { recursive: true });
});

Deno.test("run and check: a syntax error does not suggest --no-check", async () => {
  const { root, dir, env } = await sandbox({
    "pipeline.ts": "export default () => {\n  const = ;\n};\n",
  });
  const run = await runCli(["run", `${dir}/pipeline.ts`], { env });
  assert.equal(run.code, 2);
  assert.match(run.stderr, /pipeline\.ts has a syntax error \(errors above\); fix it$/m);
  assert.doesNotMatch(run.stderr, /--no-check/);
  const check = await runCli(["check", `${dir}/pipeline.ts`], { env });
  assert.match(check.stderr, /pocketci check: the pipeline has a syntax error \(above\); fix it$/m);
  // A type error still suggests it.
  await Deno.writeTextFile(
    `${dir}/pipeline.ts`,
    `const n: number = "x";\nexport default () => n;\n`,
  );
  const typed = await runCli(["run", `${dir}/pipeline.ts`], { env });
  assert.match(typed.stderr, /does not type-check \(errors above\); fix it or pass --no-check/);
  await Deno.remove(root, { recursive: true });
});

Deno.test("run: type-check output is masked with the run's secrets and cut to 40 lines", async () => {
  const secret = "hunter2-pocketci-type-secret";
  const lines = Array.from({ length: 60 }, (_, i) => `const n${i}: number = "${secret}";`);
  const { root, dir, env } = await sandbox({
    "pipeline.ts": `${lines.join("\n")}\nexport default () => {};\n`,
  });
  const result = await runCli(["run", `${dir}/pipeline.ts`, "--secret", "TOKEN"], {
    env: { ...env, TOKEN: secret },
  });
  assert.equal(result.code, 2);
  assert.ok(!result.stderr.includes(secret), result.stderr);
  assert.match(result.stderr, /\*\*\*/);
  assert.match(result.stderr, /type-check output cut here \(\d+ more line\(s\)/);
  const shown = result.stderr.split("type-check output cut here")[0].split("\n").length;
  assert.ok(shown <= 41, `${shown} lines before the marker`);
  await Deno.remove(root, { recursive: true });
});

function exporting(files: Record<string, string>, to: string): string {
  return `import { pipeline, volume } from "pocketci";
export default pipeline("export", async () => {
  const v = await volume("v");
  await v.writeFiles(${JSON.stringify(files)});
  await v.exportTo(${JSON.stringify(to)});
  console.log("exported");
});
`;
}

Deno.test("run: exportTo refuses .git/hooks and the pipeline's own files unless --allow-write names them", async () => {
  const hook = { ".git/hooks/pre-commit": "#!/bin/sh\necho pwned\n" };
  const { root, dir, env } = await sandbox({
    "into_repo.ts": exporting(hook, "."),
    "into_hooks.ts": exporting({ "pre-commit": "#!/bin/sh\necho pwned\n" }, "./.git/hooks"),
    "overwrite.ts": exporting({ "overwrite.ts": "export default () => {};\n" }, "."),
    "lib.ts": "export const x = 1;\n",
    "imports_lib.ts": `import "./lib.ts";\n` +
      exporting({ "lib.ts": "export const x = 2;\n" }, "."),
    ".git/HEAD": "ref: refs/heads/main\n",
  });
  const cases: [string, string, string][] = [
    ["into_repo.ts", `exportTo refuses to write ${dir}/.git`, `--allow-write=${dir}/.git\``],
    [
      "into_hooks.ts",
      `exportTo refuses to write ${dir}/.git/hooks`,
      `--allow-write=${dir}/.git\``,
    ],
    [
      "overwrite.ts",
      `exportTo refuses to overwrite ${dir}/overwrite.ts`,
      `--allow-write=${dir}/overwrite.ts\``,
    ],
    [
      "imports_lib.ts",
      `exportTo refuses to overwrite ${dir}/lib.ts`,
      `--allow-write=${dir}/lib.ts\``,
    ],
  ];
  for (const [file, refusal, flag] of cases) {
    const before = await Deno.readTextFile(`${dir}/${file}`);
    const result = await runCli(["run", `${dir}/${file}`], { env });
    const output = result.stdout + result.stderr;
    assert.equal(result.code, 1, output);
    assert.ok(output.includes(refusal), output);
    assert.ok(output.includes(flag), output);
    assert.doesNotMatch(output, /exported/);
    assert.equal(await Deno.readTextFile(`${dir}/${file}`), before);
  }
  assert.equal(await Deno.lstat(`${dir}/.git/hooks`).catch(() => undefined), undefined);
  assert.equal(await Deno.readTextFile(`${dir}/lib.ts`), "export const x = 1;\n");

  // Named explicitly, the same writes are allowed.
  const hooks = await runCli(
    ["run", `${dir}/into_hooks.ts`, `--allow-write=${dir}/.git/hooks`],
    { env },
  );
  assert.equal(hooks.code, 0, hooks.stdout + hooks.stderr);
  assert.match(await Deno.readTextFile(`${dir}/.git/hooks/pre-commit`), /pwned/);
  const overwrite = await runCli(
    ["run", `${dir}/overwrite.ts`, `--allow-write=${dir}/overwrite.ts`],
    { env },
  );
  assert.equal(overwrite.code, 0, overwrite.stdout + overwrite.stderr);
  assert.equal(await Deno.readTextFile(`${dir}/overwrite.ts`), "export default () => {};\n");
  await Deno.remove(root, { recursive: true });
});

Deno.test("check: SIGINT during the type-check exits 130 and leaves no probe directory", async () => {
  const { root, dir } = await sandbox({ "pipeline.ts": PIPELINE });
  const tmp = `${root}/tmp`;
  await Deno.mkdir(tmp);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-worker-options",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      new URL("../pocketci.ts", import.meta.url).pathname,
      "check",
      `${dir}/pipeline.ts`,
    ],
    env: { TMPDIR: tmp, NO_COLOR: "1" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  // Wait until the probe exists (the type-check has started), then interrupt.
  for (let i = 0; i < 200; i++) {
    if ((await Array.fromAsync(Deno.readDir(tmp))).length > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.equal((await Array.fromAsync(Deno.readDir(tmp))).length, 1, "the probe was made");
  child.kill("SIGINT");
  const status = await child.status;
  assert.equal(status.code, 130);
  assert.deepEqual(await Array.fromAsync(Deno.readDir(tmp)), []);
  await Deno.remove(root, { recursive: true });
});

Deno.test("run: a module exported into the pipeline directory cannot import outside it", async () => {
  const { root, dir, env } = await sandbox({
    "pipeline.ts": `import { pipeline, volume } from "pocketci";
export default pipeline("gen", async () => {
  const v = await volume("v");
  await v.writeFiles({
    "gen/entry.ts": 'import "./leak.ts";',
    // Split so that the pipeline's own scan does not see these imports.
    "gen/leak.ts": "imp" + 'ort "../../outside/shadow";',
    "gen/fine.ts": "export const fine = 1;",
    "gen/notes.txt": "imp" + 'ort "/etc/shadow";',
  });
  try {
    await v.exportTo(".");
  } catch (error) {
    console.log("export: " + (error as Error).message);
  }
  try {
    await import("./gen/" + "entry.ts");
    console.log("imported");
  } catch (error) {
    console.log("import: " + (error as Error).message);
  }
});
`,
  });
  const result = await runCli(["run", `${dir}/pipeline.ts`], { env });
  const output = result.stdout + result.stderr;
  assert.ok(!output.includes(SECRET_LINE) && !output.includes("not-a-real-hash"), output);
  assert.match(
    output,
    new RegExp(
      `export: exportTo removed the 3 module\\(s\\) it wrote, which pipeline code could import: ${dir}/gen/leak.ts:1: import "../../outside/shadow" refused: its (real )?path ${root}/outside/shadow is outside the pipeline's directory; a pipeline may import files in its directory ${dir},`,
    ),
  );
  assert.doesNotMatch(output, /^imported$/m);
  assert.deepEqual(
    (await Array.fromAsync(Deno.readDir(`${dir}/gen`))).map((entry) => entry.name),
    ["notes.txt"],
  );
  await Deno.remove(root, { recursive: true });
});
