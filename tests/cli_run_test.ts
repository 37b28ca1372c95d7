import assert from "node:assert/strict";
import { relative } from "node:path";
import { filesUnder, runCli, tempProject } from "./helpers/cli.ts";

const MOD = new URL("../mod.ts", import.meta.url).pathname;

async function project(pipeline: string, extra: Record<string, string> = {}) {
  const dir = await tempProject({ "pipeline.ts": pipeline, ...extra });
  return { dir, env: { POCKETCI_STATE_DIR: `${dir}/.state` } };
}

Deno.test("run: pipeline code cannot spawn, read /etc/passwd, read env or open a socket by default", async () => {
  const { dir, env } = await project(
    `
export default async () => {
  const tries: Record<string, () => unknown> = {
    spawn: () => new Deno.Command("id").outputSync(),
    read: () => Deno.readTextFileSync("/etc/passwd"),
    env: () => Deno.env.get("HOME"),
    net: () => Deno.connect({ hostname: "127.0.0.1", port: 9 }),
    write: () => Deno.writeTextFileSync("/tmp/pocketci-should-not-exist", "x"),
  };
  for (const [name, fn] of Object.entries(tries)) {
    try { await fn(); console.log(name + ": ALLOWED"); } catch (e) { console.log(name + ": " + (e as Error).name); }
  }
  console.log("own dir: " + Deno.readTextFileSync(new URL("./data.txt", import.meta.url)));
};`,
    { "data.txt": "readable" },
  );
  const result = await runCli(["run", `${dir}/pipeline.ts`], { env });
  assert.equal(result.code, 0, result.stderr);
  for (const name of ["spawn", "read", "env", "net", "write"]) {
    assert.match(result.stdout, new RegExp(`^${name}: NotCapable$`, "m"), result.stdout);
  }
  assert.match(result.stdout, /own dir: readable/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: --allow-env and --allow-read are forwarded to pipeline code", async () => {
  const { dir, env } = await project(`
export default async () => {
  console.log("env: " + Deno.env.get("POCKETCI_TEST_VALUE"));
  console.log("passwd: " + Deno.readTextFileSync("/etc/passwd").includes("root"));
};`);
  const result = await runCli(
    ["run", `${dir}/pipeline.ts`, "--allow-env=POCKETCI_TEST_VALUE", "--allow-read=/etc/passwd"],
    { env: { ...env, POCKETCI_TEST_VALUE: "forwarded" } },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /env: forwarded/);
  assert.match(result.stdout, /passwd: true/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: imports of pocketci, a relative mod.ts and jsr:@pocketci/pocketci all work from any directory", async () => {
  const scratch = await Deno.makeTempDir({ prefix: "pocketci-cli-" });
  const relativeMod = relative(scratch, MOD);
  await Deno.remove(scratch);
  const { dir, env } = await project(`
import { pipeline, task } from "pocketci";
import { task as viaJsr } from "jsr:@pocketci/pocketci";
import { task as viaPath, VERSION } from "${relativeMod}";
export default pipeline("imports", async () => {
  console.log("same: " + (task === viaJsr && task === viaPath) + " " + VERSION);
  await task("t").run("true");
});`);
  const result = await runCli(["run", "pipeline.ts"], { cwd: dir, env });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /same: true 0\.1\.0/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: --json writes versioned NDJSON; -- args reach ctx.args; the log directory is kept", async () => {
  const { dir, env } = await project(`
import { pipeline, task } from "pocketci";
export default pipeline("json", async (ctx) => {
  await task("echo").run("echo", ...ctx.args);
});`);
  const result = await runCli(["run", `${dir}/pipeline.ts`, "--json", "--", "a b", "c"], { env });
  assert.equal(result.code, 0, result.stderr);
  const events = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
  assert.ok(events.every((event) => event.v === 1 && typeof event.time === "string"));
  assert.equal(events[0].type, "run.start");
  assert.equal(events.at(-1).type, "run.end");
  assert.equal(events.at(-1).exitCode, 0);
  const output = events.find((event) => event.type === "task.output");
  assert.equal(output.data, "a b c\n");
  const logDir = events.at(-1).logDir;
  assert.match(await Deno.readTextFile(`${logDir}/echo-1.log`), /a b c/);
  assert.ok((await Deno.readTextFile(`${logDir}/events.jsonl`)).includes('"run.end"'));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: text output prefixes task lines, prints a summary and the log directory", async () => {
  const { dir, env } = await project(`
import { pipeline, task } from "pocketci";
export default pipeline("text", async () => {
  await Promise.all([task("same").run("echo", "one"), task("same").run("echo", "two")]);
});`);
  const result = await runCli(["run", `${dir}/pipeline.ts`], { env });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^same(#2)? \| one$/m);
  assert.match(result.stdout, /^same(#2)? \| two$/m);
  assert.match(result.stdout, /^same#2 \| /m);
  assert.ok(!(result.stdout + result.stderr).includes("\u001b["), "no colour when not on a TTY");
  assert.match(result.stderr, /TASK\s+STATUS\s+CODE\s+TOTAL\s+RUN\s+\(driver: native\)/);
  const logDir = /logs: (\S+)/.exec(result.stderr)?.[1];
  assert.ok(logDir && (await Deno.stat(logDir)).isDirectory);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: exit codes 2 for bad flags, bad DSN, missing file, type errors", async () => {
  const { dir, env } = await project(`import { task } from "pocketci";
export default async () => { await task(42).run("true"); };`);
  const cases: [string[], RegExp][] = [
    [["run", `${dir}/missing.ts`], /does not exist/],
    [["run", `${dir}/pipeline.ts`, "--no-such-flag"], /unknown flag --no-such-flag/],
    [["run", `${dir}/pipeline.ts`, "--driver=nosuchdriver"], /--driver/],
    [["run", `${dir}/pipeline.ts`, "--parallelism", "0"], /--parallelism/],
    [["run", `${dir}/pipeline.ts`, "--secret", "POCKETCI_UNSET_SECRET"], /POCKETCI_UNSET_SECRET/],
    [["run", `${dir}/pipeline.ts`], /does not type-check/],
  ];
  for (const [args, message] of cases) {
    const result = await runCli(args, { env });
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
  const fromEnv = await runCli(["run", `${dir}/pipeline.ts`], {
    env: { ...env, POCKETCI_DRIVER: "nosuchdriver" },
  });
  assert.equal(fromEnv.code, 2);
  assert.match(fromEnv.stderr, /^pocketci run: \$POCKETCI_DRIVER: unknown driver "nosuchdriver"/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: exit 1 on failure with the task's last lines, 124 on --timeout", async () => {
  const { dir, env } = await project(`
import { pipeline, task } from "pocketci";
export default pipeline("fail", async (ctx) => {
  if (ctx.args[0] === "slow") await task("slow").sh("sleep 30");
  await task("broken").sh("echo some context; echo more context; exit 4");
});`);
  const failed = await runCli(["run", `${dir}/pipeline.ts`], { env });
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /task "broken" failed with exit code 4/);
  assert.match(failed.stderr, /last output of broken:\n {2}some context\n {2}more context/);
  assert.doesNotMatch(failed.stderr, /at file:|at async/);
  const started = performance.now();
  const timedOut = await runCli(["run", `${dir}/pipeline.ts`, "--timeout", "1s", "--", "slow"], {
    env,
  });
  assert.equal(timedOut.code, 124, timedOut.stderr);
  assert.ok(performance.now() - started < 20_000);
  await Deno.remove(dir, { recursive: true });
});

for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  Deno.test(`run: ${signal} to pocketci cancels tasks, removes resources and exits ${code}`, async () => {
    const { dir, env } = await project(`
import { pipeline, task, volume } from "pocketci";
export default pipeline("sig", async () => {
  const v = await volume("v");
  await task("long").mount(v, "v").sh("echo started; sleep 60");
});`);
    const result = await runCli(["run", `${dir}/pipeline.ts`], {
      env,
      signal: { name: signal, when: "long | started" },
    });
    assert.equal(result.code, code, result.stderr);
    assert.match(result.stderr, /long\s+cancelled/);
    const work = await Array.fromAsync(Deno.readDir(`${dir}/.state/work`));
    assert.deepEqual(work, [], "the run's work directory was removed");
    const runs = await Array.fromAsync(Deno.readDir(`${dir}/.state/runs`));
    assert.deepEqual(runs, [], "nothing is left for gc");
    await Deno.remove(dir, { recursive: true });
  });
}

Deno.test("run: SIGINT while the pipeline is still being type-checked exits 130 and leaves nothing", async () => {
  // Fresh content, so the type-check is not cached and the signal arrives during it.
  const { dir, env } = await project(`
import { pipeline, task } from "pocketci";
// ${crypto.randomUUID()}
export default pipeline("early", async () => {
  await task("never").sh("echo ran");
});`);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-worker-options",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      new URL("../pocketci.ts", import.meta.url).pathname,
      "run",
      `${dir}/pipeline.ts`,
    ],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await new Promise((resolve) => setTimeout(resolve, 300));
  child.kill("SIGINT");
  const { code, stderr } = await child.output();
  const text = new TextDecoder().decode(stderr);
  assert.equal(code, 130, text);
  assert.doesNotMatch(text, /cannot start the runner/);
  const runs = await Array.fromAsync(Deno.readDir(`${dir}/.state/runs`)).catch(() => []);
  assert.deepEqual(runs, [], "nothing is left for gc");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: secrets from --secret and --secret-file are masked in everything printed", async () => {
  const { dir, env } = await project(
    `
import { pipeline, secret, task } from "pocketci";
export default pipeline("secrets", async () => {
  await task("show").env({ A: secret("FROM_ENV"), B: secret("FROM_FILE") }).sh('echo "a=$A b=$B"');
  throw new Error("failing with " + "x");
});`,
    { "secrets.env": 'FROM_FILE="file-secret-value"\n# comment\n' },
  );
  const result = await runCli(
    ["run", `${dir}/pipeline.ts`, "--secret", "FROM_ENV", "--secret-file", `${dir}/secrets.env`],
    { env: { ...env, FROM_ENV: "env-secret-value" } },
  );
  assert.equal(result.code, 1);
  assert.match(result.stdout, /show \| a=\*\*\* b=\*\*\*/);
  assert.doesNotMatch(result.stdout + result.stderr, /env-secret-value|file-secret-value/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: secrets and DSN tokens never reach the output, the NDJSON, the summary or the log directory", async () => {
  const { dir, env } = await project(`
import { pipeline, secret, task } from "pocketci";
export default pipeline("secrets", async () => {
  const r = await task("leak").env({ T: secret("TOK"), M: secret("MULTI") }).allowFailure().sh(
    'printf "%s" "$T" | base64; printf "Sneaky"; sleep 0.2; printf "Value42\\n"; echo "$M"; echo "$T" >&2; exit 3',
  );
  throw new Error("saw " + r.stdout + r.stderr);
});`);
  const values = [
    "SneakyValue42",
    btoa("SneakyValue42"),
    "first-line-secret",
    "second-line-secret",
  ];
  const dsnToken = "DsnTokenValue77";
  const secretEnv = {
    ...env,
    TOK: "SneakyValue42",
    MULTI: "first-line-secret\nsecond-line-secret",
  };
  for (const mode of [[], ["--json"]]) {
    const result = await runCli([
      "run",
      `${dir}/pipeline.ts`,
      ...mode,
      "--secret",
      "TOK",
      "--secret",
      "MULTI",
      `--driver=native:tokn=${dsnToken}`,
    ], { env: secretEnv });
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const printed = result.stdout + result.stderr;
    // The unknown parameter is named in a warning, its value never shown.
    assert.match(printed, /unknown parameter \\?"tokn\\?"/);
    assert.match(printed, /saw \*\*\*/);
    for (const value of [...values, dsnToken]) assert.ok(!printed.includes(value), value);
  }
  const logs = await filesUnder(`${dir}/.state/logs`);
  assert.ok(logs.length >= 4, logs.join(" "));
  for (const file of logs) {
    const text = await Deno.readTextFile(file);
    for (const value of [...values, dsnToken]) {
      assert.ok(!text.includes(value), `${value} in ${file}`);
    }
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: from and exportTo outside the pipeline directory need a grant; --allow-write alone is enough for exportTo", async () => {
  const outside = await Deno.makeTempDir({ prefix: "pocketci-outside-" });
  await Deno.writeTextFile(`${outside}/f.txt`, "data");
  const target = `${outside}/exported`;
  const { dir, env } = await project(`
import { pipeline, volume } from "pocketci";
export default pipeline("outside", async (ctx) => {
  const v = await volume("v", ctx.args[0] === "from" ? { from: ${JSON.stringify(outside)} } : {});
  await v.writeFiles({ "out.txt": "exported" });
  await v.exportTo(${JSON.stringify(target)});
});`);
  const denied = await runCli(["run", `${dir}/pipeline.ts`, "--", "from"], { env });
  assert.equal(denied.code, 1);
  assert.match(
    denied.stderr,
    new RegExp(
      `host path "${outside}" is outside the pipeline's directory .*--allow-read=${outside}`,
    ),
  );
  const noWrite = await runCli(["run", `${dir}/pipeline.ts`], { env });
  assert.equal(noWrite.code, 1);
  assert.match(
    noWrite.stderr,
    new RegExp(`grant it with \`pocketci run --allow-write=${target}\``),
  );
  const granted = await runCli(["run", `${dir}/pipeline.ts`, `--allow-write=${outside}`], { env });
  assert.equal(granted.code, 0, granted.stdout + granted.stderr);
  assert.equal(await Deno.readTextFile(`${target}/out.txt`), "exported");
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(outside, { recursive: true });
});

Deno.test("check: 0 for a good pipeline, 1 for type errors, 2 for a missing file", async () => {
  const dir = await tempProject({
    "good.ts":
      `import { pipeline, task } from "pocketci";\nexport default pipeline("g", async () => { await task("t").run("true"); });\n`,
    "bad.ts":
      `import { task } from "pocketci";\nexport default async () => { await task("t").image(1).run("true"); };\n`,
  });
  assert.equal((await runCli(["check", `${dir}/good.ts`])).code, 0);
  const bad = await runCli(["check", `${dir}/bad.ts`]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /not assignable/);
  assert.equal((await runCli(["check", `${dir}/none.ts`])).code, 2);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: a top-level throw or syntax error is a load error (2); an unhandled task rejection or late throw fails the run (1); no Deno stack trace", async () => {
  const dir = await tempProject({
    "top.ts": `throw new Error("top-level boom");\n`,
    "syntax.ts": `export default async () => { let = ; };\n`,
    "unhandled.ts": `import { task } from "pocketci";
export default async () => {
  task("x").sh("exit 1");
  await new Promise((resolve) => setTimeout(resolve, 2000));
};\n`,
    "late.ts": `export default async () => {
  setTimeout(() => { throw new Error("late boom"); }, 10);
  await new Promise((resolve) => setTimeout(resolve, 2000));
};\n`,
  });
  const env = { POCKETCI_STATE_DIR: `${dir}/.state` };
  const noStack = (stderr: string) => {
    assert.doesNotMatch(stderr, /Uncaught|^\s+at /m, stderr);
    assert.ok(!stderr.includes("\x1b["), stderr);
  };
  const top = await runCli(["run", "--no-check", `${dir}/top.ts`], { env });
  assert.equal(top.code, 2);
  assert.match(top.stderr, /cannot load the pipeline: Error: top-level boom \(at .*top\.ts:1:7\)/);
  noStack(top.stderr);
  const syntax = await runCli(["run", "--no-check", `${dir}/syntax.ts`], { env });
  assert.equal(syntax.code, 2);
  assert.match(syntax.stderr, /cannot load the pipeline: SyntaxError: /);
  noStack(syntax.stderr);
  const unhandled = await runCli(["run", "--no-check", `${dir}/unhandled.ts`], { env });
  assert.equal(unhandled.code, 1);
  assert.match(
    unhandled.stderr,
    /did not handle an error \(await every task, or catch it\): TaskError/,
  );
  noStack(unhandled.stderr);
  const late = await runCli(["run", "--no-check", `${dir}/late.ts`], { env });
  assert.equal(late.code, 1);
  assert.match(late.stderr, /did not handle an error .*: Error: late boom \(at .*late\.ts:2:28\)/);
  noStack(late.stderr);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: a second Ctrl-C kills tasks that ignore SIGTERM without waiting for the grace period", async () => {
  const { dir, env } = await project(`
import { pipeline, task } from "pocketci";
export default pipeline("stubborn", async () => {
  await task("stubborn").sh("trap '' TERM; echo started; sleep 60");
});`);
  const started = performance.now();
  const result = await runCli(["run", `${dir}/pipeline.ts`], {
    env,
    signal: { name: "SIGINT", when: "stubborn | started", repeatAfterMs: 700 },
  });
  assert.equal(result.code, 130, result.stderr);
  assert.ok(performance.now() - started < 9_000, "did not wait for the 10 s grace period");
  assert.match(result.stderr, /second SIGINT: killing tasks now/);
  assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/.state/work`)), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "run: colour on a TTY (through script(1)), none when NO_COLOR is set",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const { dir, env } = await project(`
import { pipeline, task } from "pocketci";
export default pipeline("tty", async () => { await task("t").run("echo", "hi"); });`);
    const entry = new URL("../pocketci.ts", import.meta.url).pathname;
    const command =
      `${Deno.execPath()} run -A --unstable-worker-options ${entry} run ${dir}/pipeline.ts`;
    const underTty = async (extra: Record<string, string>) => {
      const output = await new Deno.Command("script", {
        args: ["-qec", command, "/dev/null"],
        clearEnv: true,
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          HOME: Deno.env.get("HOME") ?? "/",
          ...env,
          ...extra,
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(output.code, 0);
      return new TextDecoder().decode(output.stdout);
    };
    const coloured = await underTty({});
    assert.ok(coloured.includes("\u001b[36mt |\u001b[0m hi"), JSON.stringify(coloured));
    const plain = await underTty({ NO_COLOR: "1" });
    assert.ok(!plain.includes("\u001b["), JSON.stringify(plain));
    assert.match(plain, /t \| hi/);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("run: a pipeline in a directory whose name has a space and a #", async () => {
  const dir = await tempProject({
    "with space #1/pipeline.ts": `import { pipeline, task, volume } from "pocketci";
export default pipeline("odd", async () => {
  const v = await volume("v", { from: "." });
  const r = await task("t").mount(v, "v").run("ls", "v");
  console.log("listed: " + r.stdout.trim());
  await v.exportTo("./out");
});\n`,
  });
  const result = await runCli(["run", `${dir}/with space #1/pipeline.ts`], {
    env: { POCKETCI_STATE_DIR: `${dir}/.state` },
  });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /listed: pipeline\.ts/);
  assert.ok((await Deno.stat(`${dir}/with space #1/out/pipeline.ts`)).isFile);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: native tasks and sandbox calls may work in an absolute host directory such as /tmp", async () => {
  // The runner child holds only the driver's narrowed permissions (no read of /tmp): the
  // driver must still check and use the directory.
  const { dir, env } = await project(`import { pipeline, sandbox, task } from "pocketci";
export default pipeline("abs-workdir", async () => {
  const r = await task("in-tmp").workDir("/tmp").sh("pwd");
  console.log("task: " + r.stdout.trim());
  await using box = await sandbox("box").start();
  const c = await box.workDir("/tmp").sh("pwd");
  console.log("call: " + c.stdout.trim());
  const missing = await task("missing").workDir("/tmp/pocketci-no-such-dir-4f1c").sh("pwd")
    .then(() => "ran", (e) => e.result.status + " " + e.result.error);
  console.log("missing: " + missing);
});\n`);
  const result = await runCli(["run", "--driver=native", `${dir}/pipeline.ts`], { env });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /^task: \/tmp$/m);
  assert.match(result.stdout, /^call: \/tmp$/m);
  assert.match(
    result.stdout,
    /^missing: error .*working directory "\/tmp\/pocketci-no-such-dir-4f1c" does not exist/m,
  );
  await Deno.remove(dir, { recursive: true });
});
