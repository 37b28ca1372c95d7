// The default namespace as `pocketci run` and `pocketci dsn --pipeline` see it, in git
// repositories, and `pocketci run --namespace`.
import assert from "node:assert/strict";
import { runCli } from "./helpers/cli.ts";

async function git(cwd: string, ...args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command("git", { args, cwd, stderr: "piped" }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
}

const PIPELINE = `import { pipeline } from "pocketci";
export default pipeline("ns", (ctx) => { console.log("NAMESPACE=" + ctx.namespace); });
`;

async function checkout(root: string, path: string, remote: string, file: string): Promise<string> {
  const dir = `${root}/${path}`;
  await Deno.mkdir(dir, { recursive: true });
  await git(dir, "init", "-q");
  await git(dir, "remote", "add", "origin", remote);
  await Deno.mkdir(`${dir}/${file.slice(0, file.lastIndexOf("/"))}`, { recursive: true });
  await Deno.writeTextFile(`${dir}/${file}`, PIPELINE);
  return `${dir}/${file}`;
}

function namespaceOf(stdout: string): string {
  const match = /NAMESPACE=(\S+)/.exec(stdout);
  assert.ok(match, stdout);
  return match[1];
}

Deno.test("run and dsn --pipeline agree on the namespace; two checkouts of one remote share it; --namespace overrides", async () => {
  const root = await Deno.makeTempDir({ prefix: "pocketci-ns-cli-" });
  const env = { POCKETCI_STATE_DIR: `${root}/state` };
  try {
    const first = await checkout(
      root,
      "home/me/widget",
      "git@github.com:acme/widget.git",
      "ci/pipeline.ts",
    );
    const second = await checkout(
      root,
      "builds/7/src",
      "https://github.com/acme/widget",
      ".ci/renamed.ts",
    );
    const ran = await runCli(["run", first], { env });
    assert.equal(ran.code, 0, ran.stdout + ran.stderr);
    const ns = namespaceOf(ran.stdout);
    assert.match(ns, /^ci-widget-[0-9a-f]{10}$/);
    const shown = await runCli(["dsn", "--json", "--pipeline", first, "native"], { env });
    assert.equal(JSON.parse(shown.stdout).namespace, ns);
    const human = await runCli(["dsn", "--pipeline", first, "native"], { env });
    assert.match(
      human.stdout,
      new RegExp(`^namespace: +${ns} \\(default, from the git remote origin\\)$`, "m"),
    );
    const other = await runCli(["run", second], { env });
    assert.equal(namespaceOf(other.stdout), ns, other.stderr);
    const overridden = await runCli(["run", "--namespace=team-cache", second], { env });
    assert.equal(namespaceOf(overridden.stdout), "team-cache", overridden.stderr);
    const bad = await runCli(["run", "--namespace", "Team_Cache", second], { env });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--namespace "Team_Cache": the namespace .* must be a DNS label/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
