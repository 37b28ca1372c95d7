/**
 * Stopping fly runs through the CLI against the fake Machines API: Ctrl-C destroys the running
 * machines, the run's volume and the ephemeral app; after `kill -9` of the whole run (launcher
 * and runner) the machines keep running until `pocketci gc` removes them, the volume and the app.
 *
 * @module
 */

import assert from "node:assert/strict";
import { runCli, tempProject } from "../helpers/cli.ts";
import { childProcesses, eventually, readText, spawnCli } from "../helpers/processes.ts";
import { ephemeralAppName } from "../../drivers/fly/create.ts";
import { assertEngine, FAKE_TOKEN, fakeLeftovers, ignoreFly, startFake } from "./fake_fixture.ts";

const fake = ignoreFly ? undefined : startFake();

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({
    name: `fly cli: ${name}`,
    ignore: ignoreFly,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });

const LONG = `
import { pipeline, task, volume } from "pocketci";
export default pipeline("long", async () => {
  const v = await volume("v");
  await task("long").image("busybox").mount(v, "v").sh("echo re''ady; sleep 120");
});`;
const READY = `"data":"ready`;

async function project() {
  const dir = await tempProject({ "pipeline.ts": LONG });
  return {
    dir,
    env: {
      POCKETCI_STATE_DIR: `${dir}/.state`,
      FLY_API_URL: fake!.url,
      FLY_LOGS_URL: fake!.url,
      FLY_API_TOKEN: FAKE_TOKEN,
    },
  };
}

function appOf(namespace: string) {
  return fake!.apps.get(ephemeralAppName(namespace));
}

test("Ctrl-C destroys the running machine, the run's volume and the ephemeral app", async () => {
  assertEngine();
  const namespace = `stop-${crypto.randomUUID().slice(0, 6)}`;
  const { dir, env } = await project();
  try {
    const result = await runCli(
      ["run", "--json", `--namespace=${namespace}`, "--driver=fly", `${dir}/pipeline.ts`],
      { env, signal: { name: "SIGINT", when: READY } },
    );
    assert.equal(result.code, 130, result.stderr);
    assert.equal(appOf(namespace), undefined, "the ephemeral app is gone");
    assert.deepEqual(
      fake!.liveMachines().filter((m) => m.app === ephemeralAppName(namespace)),
      [],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("kill -9 of the whole run leaves the machine running; pocketci gc removes it, the volume and the app", async () => {
  assertEngine();
  const namespace = `kill-${crypto.randomUUID().slice(0, 6)}`;
  const { dir, env } = await project();
  const launcher = spawnCli(
    ["run", "--json", `--namespace=${namespace}`, "--driver=fly", `${dir}/pipeline.ts`],
    env,
  );
  const stderr = new Response(launcher.stderr).text();
  try {
    const { reader } = await readText(launcher.stdout, READY);
    const [runner] = await childProcesses(launcher.pid, "runner/child.ts");
    assert.ok(runner, "found the runner child");
    Deno.kill(runner, "SIGKILL");
    launcher.kill("SIGKILL");
    await launcher.status;
    await reader.cancel();
    await stderr;
    const app = appOf(namespace);
    assert.ok(app, "the killed run's app is still there");
    assert.equal([...app.machines.values()].filter((m) => m.state === "started").length, 1);
    assert.equal(app.volumes.size, 1);

    // The killed runner may take a moment to be reaped; until then gc sees a live run.
    let gc = await runCli(["gc", "--driver=fly"], { env });
    for (let i = 0; i < 10 && /live run/.test(gc.stdout) && !/removed/.test(gc.stdout); i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      gc = await runCli(["gc", "--driver=fly"], { env });
    }
    assert.equal(gc.code, 0, gc.stdout + gc.stderr);
    assert.match(gc.stdout, /removed\s+fly/);
    await eventually("the app to be deleted", () => Promise.resolve(!appOf(namespace)));
    assert.deepEqual(
      fake!.liveMachines().filter((m) => m.app === ephemeralAppName(namespace)),
      [],
    );
    const again = await runCli(["gc", "--driver=fly"], { env });
    assert.match(again.stdout, /nothing to collect/);
  } finally {
    try {
      launcher.kill("SIGKILL");
    } catch {
      // already gone
    }
    await Deno.remove(dir, { recursive: true });
  }
});

test("nothing is left on the fake", async () => {
  const machines = fake!.liveMachines().map((m) => m.name);
  await fake!.close();
  assert.deepEqual(machines, []);
  assert.deepEqual(await fakeLeftovers(fake!), []);
});
