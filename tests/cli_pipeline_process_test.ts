import assert from "node:assert/strict";
import { runCli, tempProject } from "./helpers/cli.ts";
import { eventually, processAlive, processesMentioning, spawnCli } from "./helpers/processes.ts";
import { readUntil } from "./helpers/cli.ts";

Deno.test("run --pipeline-memory: an out-of-memory pipeline exits 1 with one line, run.end, no process or task left", async () => {
  const dir = await tempProject({
    "pipeline.ts": `import { pipeline, task } from "pocketci";
export default pipeline("oom", async () => {
  task("sleeper").sh("sleep 41.375").catch(() => {});
  await new Promise((resolve) => setTimeout(resolve, 300));
  const keep: string[][] = [];
  for (;;) keep.push(new Array(100_000).fill("y".repeat(8) + keep.length));
});`,
  });
  const env = { POCKETCI_STATE_DIR: `${dir}/.state` };
  const result = await runCli(
    ["run", "--no-check", "--json", "--pipeline-memory=64MB", `${dir}/pipeline.ts`],
    { env },
  );
  assert.equal(result.code, 1, result.stderr);
  const events = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
  const end = events.at(-1);
  assert.equal(end.type, "run.end");
  assert.equal(
    end.error,
    "the pipeline ran out of memory (its heap limit is 64 MB; raise it with --pipeline-memory=SIZE)",
  );
  assert.deepEqual(end.leftovers, []);
  const sleeper = events.find((event) => event.type === "task.end");
  assert.equal(sleeper?.status, "cancelled");
  assert.deepEqual(await processesMentioning(dir), [], "a pipeline or task process is left");
  assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/.state/work`)), []);
  const bad = await runCli(["run", "--pipeline-memory=lots", `${dir}/pipeline.ts`], { env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--pipeline-memory must be a size of at least 32MB .*not "lots"/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: the pipeline process ends when its runner is killed with SIGKILL", async () => {
  const dir = await tempProject({
    "pipeline.ts": `import { pipeline } from "pocketci";
export default pipeline("waits", async () => {
  console.log("waiting now");
  await new Promise((resolve) => setTimeout(resolve, 60_000));
});`,
  });
  const child = spawnCli(["run", "--no-check", `${dir}/pipeline.ts`], {
    POCKETCI_STATE_DIR: `${dir}/.state`,
  });
  const reader = await readUntil(child.stdout, "waiting now");
  // The pipeline process, not the launcher (whose command line names the file too).
  const [pipelinePid] = (await processesMentioning(`${dir}/pipeline.ts`)).filter((pid) =>
    Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("pipeline_main.ts")
  );
  assert.ok(pipelinePid !== undefined, "no pipeline process found");
  const stat = await Deno.readTextFile(`/proc/${pipelinePid}/stat`);
  const runnerPid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  Deno.kill(runnerPid, "SIGKILL");
  await eventually("the pipeline process ends", async () => !(await processAlive(pipelinePid)));
  await reader.cancel();
  await child.stderr.cancel();
  await child.status;
  assert.deepEqual(await processesMentioning(dir), []);
  await Deno.remove(dir, { recursive: true });
});
