// The README's install block, run as written in a fresh HOME, must give a `pocketci` whose every
// subcommand works. The block is read from README.md, so the test fails when the README is wrong.
// DENO_DIR stays the filled cache, so nothing is downloaded.
import assert from "node:assert/strict";
import { engineProblem } from "./docker/engine_fixture.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const SECTION = "## Install the `pocketci` command";
const dockerProblem = await engineProblem();
const inCi = Deno.env.get("CI") === "true";

/** The first ```sh block of the README's install section. */
export function installBlock(readme: string): string {
  const section = readme.indexOf(SECTION);
  assert.ok(section >= 0, `README.md has no "${SECTION}" section`);
  const start = readme.indexOf("```sh\n", section);
  const end = readme.indexOf("\n```", start + 1);
  assert.ok(start >= 0 && end > start, "the install section has no ```sh block");
  return readme.slice(start + "```sh\n".length, end);
}

interface Output {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function output(command: string, args: string[], env: Record<string, string>) {
  const result = await new Deno.Command(command, {
    args,
    cwd: ROOT,
    clearEnv: true,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: result.code,
    stdout: decoder.decode(result.stdout),
    stderr: decoder.decode(result.stderr),
  } satisfies Output;
}

function assertWorked(label: string, result: Output): void {
  const both = `${label}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
  assert.doesNotMatch(result.stdout + result.stderr, /not a dependency/, both);
  assert.equal(result.code, 0, both);
}

Deno.test("the README's install commands give a pocketci whose every subcommand works", async () => {
  if (dockerProblem !== undefined && inCi) throw new Error(dockerProblem);
  const temp = await Deno.realPath(await Deno.makeTempDir({ prefix: "pocketci-install-" }));
  try {
    const home = `${temp}/home`;
    await Deno.mkdir(home);
    const realHome = Deno.env.get("HOME") ?? "/nonexistent";
    // A fresh user: the same system PATH, nothing from the real home's installs.
    const systemPath = (Deno.env.get("PATH") ?? "").split(":")
      .filter((dir) => dir !== "" && !dir.startsWith(`${realHome}/.deno`)).join(":");
    const env: Record<string, string> = {
      HOME: home,
      PATH: systemPath,
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${realHome}/.cache/deno`,
      NO_COLOR: "1",
      DENO_NO_UPDATE_CHECK: "1",
    };
    const block = installBlock(await Deno.readTextFile(`${ROOT}/README.md`));
    // The block as written, then where its PATH finds pocketci (and the PATH itself).
    const script = `set -e\n${block}\ncommand -v pocketci\nprintf '%s\\n' "$PATH"\n`;
    const installed = await output("sh", ["-c", script], env);
    assertWorked("the README's install block", installed);
    const lines = installed.stdout.trimEnd().split("\n");
    const pocketci = lines[lines.length - 2];
    const path = lines[lines.length - 1];
    assert.ok(
      pocketci.startsWith(`${temp}/`),
      `the README's PATH finds ${pocketci}, not the pocketci it installed under ${temp}`,
    );
    const shellEnv = { ...env, PATH: path };
    const run = (...args: string[]) => output(pocketci, args, shellEnv);

    const version = await run("--version");
    assertWorked("pocketci --version", version);
    assert.match(version.stdout, /^pocketci \d+\.\d+\.\d+\n$/);
    const checks: Array<[string[], RegExp]> = [
      [["--help"], /^Usage:/m],
      [["dsn", "docker"], /^driver: +docker$/m],
      [["drivers"], /^docker: /m],
      [["permissions", "--driver=docker"], /--allow-net=unix:\/var\/run\/docker\.sock/],
      [["gc", "--dry-run", "--state-dir", `${temp}/state`], /nothing to collect|would/],
      [["check", "examples/hello-world.ts"], /^$/],
      [["run", "examples/hello-world.ts"], /pipeline succeeded/],
      [["init", `${temp}/project`], /^wrote /],
      [["check", `${temp}/project/ci.ts`], /^$/],
    ];
    if (dockerProblem === undefined) {
      checks.push([["run", "examples/hello-world.ts", "--driver=docker"], /pipeline succeeded/]);
    }
    for (const [args, pattern] of checks) {
      const result = await run(...args);
      assertWorked(`pocketci ${args.join(" ")}`, result);
      const shown = args[0] === "run" ? result.stdout + result.stderr : result.stdout;
      assert.match(shown, pattern, `pocketci ${args.join(" ")}: ${shown}`);
      if (args[0] !== "run") {
        // Nothing but the command's own output: no Deno warnings on first use.
        assert.equal(result.stderr, "", `pocketci ${args.join(" ")} wrote to stderr`);
      }
    }
  } finally {
    await Deno.remove(temp, { recursive: true });
  }
});

Deno.test("installBlock reads the first sh block of the install section", () => {
  const readme = "# x\n```sh\nno\n```\n## Install the `pocketci` command\ntext\n```sh\na\nb\n```\n";
  assert.equal(installBlock(readme), "a\nb");
});
