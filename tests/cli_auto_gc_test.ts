// `pocketci run` runs the automatic gc after the run unless POCKETCI_NO_AUTO_GC=1.
import assert from "node:assert/strict";
import { runCli, tempProject } from "./helpers/cli.ts";
import { defaultNamespace } from "../dsn/namespace.ts";

const PIPELINE = `import { pipeline, task } from "pocketci";
export default pipeline("p", async () => { await task("t").run("true"); });
`;

async function staleCache(stateDir: string, namespace: string): Promise<string> {
  const dir = `${stateDir}/native/caches/${namespace}/stale`;
  await Deno.mkdir(dir, { recursive: true });
  const usedAt = new Date(Date.now() - 8 * 24 * 3_600_000).toISOString();
  await Deno.writeTextFile(
    `${dir}.meta.json`,
    JSON.stringify({ name: "stale", lastUsedAt: usedAt, runId: "r" }),
  );
  return dir;
}

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

Deno.test("pocketci run: the automatic gc removes a stale cache of the run's namespace once a day; POCKETCI_NO_AUTO_GC=1 turns it off", async () => {
  const dir = await tempProject({ "pipeline.ts": PIPELINE });
  try {
    const stateDir = `${dir}/.state`;
    const namespace = defaultNamespace(`${dir}/pipeline.ts`, dir);
    const cache = await staleCache(stateDir, namespace);
    const off = await runCli(["run", `${dir}/pipeline.ts`], {
      env: { POCKETCI_STATE_DIR: stateDir, POCKETCI_NO_AUTO_GC: "1" },
    });
    assert.equal(off.code, 0, off.stdout + off.stderr);
    assert.ok(await exists(cache), "the automatic gc ran although turned off");
    assert.equal(await exists(`${stateDir}/auto-gc.stamp`), false);
    const on = await runCli(["run", `${dir}/pipeline.ts`], {
      env: { POCKETCI_STATE_DIR: stateDir },
    });
    assert.equal(on.code, 0, on.stdout + on.stderr);
    assert.equal(await exists(cache), false, on.stdout + on.stderr);
    assert.match(
      on.stdout + on.stderr,
      /automatic gc \(at most daily; POCKETCI_NO_AUTO_GC=1 turns it off\): removed 1 cache\(s\)/,
    );
    assert.ok(await exists(`${stateDir}/auto-gc.stamp`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
