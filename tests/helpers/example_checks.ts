/**
 * What examples/retry.ts and examples/groups.ts print, checked the same way on every driver.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { CliResult } from "./cli.ts";

/** No CI system's folding, whatever CI runs the tests. */
export const NO_FOLDING: Readonly<Record<string, string>> = {
  GITHUB_ACTIONS: "",
  GITLAB_CI: "",
  BUILDKITE: "",
};

/** One NDJSON event. */
export type JsonEvent = { readonly type: string; readonly [key: string]: unknown };

/** The NDJSON events of `--json` output. */
export function jsonEvents(stdout: string): JsonEvent[] {
  return stdout.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line));
}

/** examples/retry.ts in text: attempts, the `when` filter, the failure and cleanup steps. */
export function checkRetryText(result: CliResult): void {
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /flaky \| attempt 1\nflaky \| attempt 2\nflaky \| attempt 3\n/);
  assert.match(result.stdout, /flaky: success after 3 attempts/);
  assert.match(result.stderr, /▶ flaky: .* \(attempt 3 of 4\)\n/);
  assert.match(result.stderr, /↻ flaky: attempt 1 of 4 failed \(exit 1\); retrying in 200ms\n/);
  assert.match(result.stderr, /↻ flaky: attempt 2 of 4 failed \(exit 1\); retrying in 400ms\n/);
  assert.match(result.stderr, /\nflaky +success \(3 attempts\) +0 /);
  assert.match(result.stdout, /slow: timeout after 1 attempt\(s\)/, "a timeout is not a failure");
  assert.doesNotMatch(result.stderr, /↻ slow/);
  assert.match(result.stdout, /collect-diagnostics \| smoke-test ended: failure \(exit 1\)/);
  assert.match(result.stdout, /cleanup \| cleaned up/);
}

/** examples/retry.ts with `--json`: attempt fields and the backoff delays in the events. */
export function checkRetryJson(result: CliResult): void {
  assert.equal(result.code, 0, result.stderr);
  const flaky = jsonEvents(result.stdout).filter((e) =>
    e.name === "flaky" && (e.type === "task.start" || e.type === "task.end")
  );
  assert.deepEqual(flaky.map((e) => [e.type, e.attempt, e.maxAttempts, e.retryInMs]), [
    ["task.start", 1, 4, undefined],
    ["task.end", 1, 4, 200],
    ["task.start", 2, 4, undefined],
    ["task.end", 2, 4, 400],
    ["task.start", 3, 4, undefined],
    ["task.end", 3, 4, undefined],
  ]);
  assert.equal(new Set(flaky.map((e) => e.id)).size, 1, "one task ID for every attempt");
}

/** examples/groups.ts run with GITHUB_ACTIONS=true and --timestamps. */
export function checkGroupsText(result: CliResult): void {
  assert.equal(result.code, 0, result.stderr);
  const stamp = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z ";
  assert.match(result.stderr, new RegExp(`^::group::build\n${stamp}┌ build\n`, "m"));
  assert.match(result.stderr, new RegExp(`^::endgroup::\n${stamp}└ build: success in \\S+\n`, "m"));
  assert.match(result.stderr, /^::group::checks\n/m);
  assert.doesNotMatch(result.stderr, /::group::(unit|lint)/, "nested groups are not folded");
  assert.match(result.stderr, new RegExp(`^${stamp}  ┌ checks › unit\n`, "m"));
  assert.match(result.stderr, new RegExp(`^${stamp}    ▶ unit: `, "m"));
  assert.match(result.stdout, new RegExp(`^${stamp}  compile \\| compiled\n`, "m"));
  assert.match(result.stdout, new RegExp(`^${stamp}  build done\n`, "m"), "console.log in a group");
  assert.match(result.stdout, new RegExp(`^${stamp}    unit \\| unit passed\n`, "m"));
  assert.match(result.stdout, new RegExp(`^${stamp}checks: unit, lint\n`, "m"));
  assert.match(
    result.stderr,
    new RegExp(
      `\n${stamp}GROUP +STATUS +TIME\n${stamp}build +success +\\S+\n${stamp}checks +success +\\S+\n` +
        `${stamp}checks › unit +success +\\S+\n${stamp}checks › lint +success +\\S+\n`,
    ),
  );
}

/** examples/groups.ts with `--json`: group events, parents, durations, tasks' group IDs. */
export function checkGroupsJson(result: CliResult): void {
  assert.equal(result.code, 0, result.stderr);
  const events = jsonEvents(result.stdout);
  const starts = events.filter((e) => e.type === "group.start");
  const idOf = Object.fromEntries(starts.map((e) => [e.name, e.id]));
  assert.deepEqual(starts.map((e) => [e.name, e.parentId]), [
    ["build", undefined],
    ["checks", undefined],
    ["unit", idOf.checks],
    ["lint", idOf.checks],
  ]);
  const ends = events.filter((e) => e.type === "group.end");
  assert.equal(ends.length, 4);
  for (const end of ends) {
    assert.equal(end.status, "success");
    assert.equal(typeof end.durationMs, "number");
  }
  const unit = ends.find((e) => e.id === idOf.unit)!;
  assert.ok((unit.durationMs as number) >= 200, "unit's group lasted its 0.2 s task");
  const log = events.find((e) => e.type === "log" && e.message === "build done");
  assert.equal(log?.groupId, idOf.build, "console.log carries its group");
  for (const [task, group] of [["compile", "build"], ["unit", "unit"], ["lint", "lint"]]) {
    for (const type of ["task.start", "task.end"]) {
      const event = events.find((e) => e.type === type && e.name === task);
      assert.equal(event?.groupId, idOf[group], `${type} of ${task}`);
    }
  }
}
