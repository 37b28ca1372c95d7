/**
 * `.retry()` and `group()` through `pocketci run`: Ctrl-C while a retry waits, a cleanup
 * task in `finally` after Ctrl-C, the runner's check of a policy pipeline code forged, and
 * folding detected from the launcher's environment (the runner child's is narrowed).
 *
 * @module
 */

import assert from "node:assert/strict";
import { runCli, tempProject } from "./helpers/cli.ts";
import { NO_FOLDING } from "./helpers/example_checks.ts";

async function project(pipeline: string) {
  const dir = await tempProject({ "pipeline.ts": pipeline });
  return { dir, env: { POCKETCI_STATE_DIR: `${dir}/.state`, ...NO_FOLDING } };
}

Deno.test("run: Ctrl-C while a retry waits stops at once; a cleanup task in finally never runs", async () => {
  const { dir, env } = await project(`
import { pipeline, task } from "pocketci";
export default pipeline("interrupted-retry", async () => {
  try {
    await task("flaky").retry(3, { delay: "60s" }).sh("echo trying; exit 1");
  } finally {
    await task("cleanup").sh("echo cleanup ran");
  }
});`);
  const started = performance.now();
  const result = await runCli(["run", `${dir}/pipeline.ts`], {
    env,
    signal: { name: "SIGINT", when: "retrying in 1m00s" },
  });
  const elapsed = performance.now() - started;
  assert.equal(result.code, 130, result.stderr);
  assert.ok(elapsed < 20_000, `the run took ${elapsed} ms: the 60 s delay was waited out`);
  assert.match(result.stderr, /↻ flaky: attempt 1 of 4 failed \(exit 1\); retrying in 1m00s/);
  assert.doesNotMatch(result.stderr, /attempt 2 of 4/, "no second attempt started");
  assert.match(result.stderr, /\nflaky +cancelled +- /);
  // Its request races the run's end: a row, if any, says it never started.
  assert.doesNotMatch(
    result.stderr,
    /▶ cleanup|\ncleanup +(success|failure|timeout|error|cancelled)/,
  );
  assert.doesNotMatch(result.stdout, /cleanup ran/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: a retry policy or group ID pipeline code forged is refused by the runner", async () => {
  const { dir, env } = await project(`
// deno-lint-ignore-file no-console
import { pipeline } from "pocketci";
const host = (globalThis as Record<symbol, any>)[Symbol.for("pocketci.host")];
const request = { name: "t", command: ["true"], env: {}, mounts: [] };
export default pipeline("forged", async () => {
  for (const extra of [
    { retry: { max: 1000, when: ["failure"], delayMs: 0, backoff: 1 } },
    { retry: { max: 1, when: ["failure"], delayMs: -5, backoff: 1 } },
    { groupId: "group-7" },
  ]) {
    try {
      await host.runTask({ ...request, ...extra });
      console.log("accepted");
    } catch (error) {
      console.log("refused: " + (error as Error).message);
    }
  }
  try {
    await host.endGroup("group-1", "success");
  } catch (error) {
    console.log("refused: " + (error as Error).message);
  }
});`);
  const result = await runCli(["run", "--no-check", `${dir}/pipeline.ts`], { env });
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stdout, /accepted/);
  assert.match(result.stdout, /refused: retry\(\) needs a whole number of retries from 0 to 10/);
  assert.match(result.stdout, /refused: retry\(\) option "delay" must be a duration from 0 to 1h/);
  assert.equal((result.stdout.match(/refused: invalid group ID/g) ?? []).length, 2);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: folding follows the launcher's environment; --json has no markers; --timestamps takes no value", async () => {
  const { dir, env } = await project(`
import { group, pipeline, task } from "pocketci";
export default pipeline("folded", async () => {
  await group("build", () => task("compile").sh("echo compiled"));
});`);
  const gitlab = await runCli(["run", `${dir}/pipeline.ts`], {
    env: { ...env, GITLAB_CI: "true" },
  });
  assert.equal(gitlab.code, 0, gitlab.stderr);
  assert.match(
    gitlab.stderr,
    // deno-lint-ignore no-control-regex -- GitLab's section markers start with ESC [0K
    /\x1b\[0Ksection_start:\d+:pocketci_group-1\[collapsed=true\]\r\x1b\[0Kbuild\n/,
  );
  assert.match(
    gitlab.stderr,
    // deno-lint-ignore no-control-regex -- GitLab's section markers start with ESC [0K
    /\x1b\[0Ksection_end:\d+:pocketci_group-1\r\x1b\[0K\n└ build: success/,
  );
  const json = await runCli(["run", "--json", `${dir}/pipeline.ts`], {
    env: { ...env, GITHUB_ACTIONS: "true" },
  });
  assert.equal(json.code, 0, json.stderr);
  assert.doesNotMatch(json.stdout + json.stderr, /::group::/);
  const bad = await runCli(["run", "--timestamps=yes", `${dir}/pipeline.ts`], { env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--timestamps takes no value, not "--timestamps=yes"/);
  await Deno.remove(dir, { recursive: true });
});
