import assert from "node:assert/strict";
import type { RunEvent } from "./events.ts";
import { checkFolding, detectFolding, type FoldingStyle } from "./folding.ts";
import { TextReporter } from "./reporters.ts";
import { timestamped } from "./timestamps.ts";

const CLOCK = () => new Date("2026-01-02T03:04:05.678Z");

function reporter(options: { folding?: FoldingStyle; timestamps?: boolean } = {}) {
  let text = "";
  const out = { stdout: (t: string) => text += t, stderr: (t: string) => text += t };
  const r = new TextReporter(out, { colour: false, driver: "native", clock: CLOCK, ...options });
  return { r, text: () => text };
}

const start = (id: string, groupId?: string, attempt?: number): RunEvent => ({
  type: "task.start",
  id,
  name: id,
  kind: "task",
  command: ["echo", id],
  ...(groupId ? { groupId } : {}),
  ...(attempt ? { attempt, maxAttempts: 3 } : {}),
});
const output = (id: string, data: string): RunEvent => ({
  type: "task.output",
  id,
  name: id,
  stream: "stdout",
  data,
});
const end = (id: string, extra: Record<string, unknown> = {}): RunEvent =>
  ({
    type: "task.end",
    id,
    name: id,
    kind: "task",
    status: "success",
    code: 0,
    durationMs: 5,
    totalMs: 6,
    allowFailure: false,
    ...extra,
  }) as RunEvent;
const log = (message: string, groupId: string): RunEvent => ({
  type: "log",
  level: "info",
  message,
  groupId,
});
const groupStart = (id: string, name: string, parentId?: string): RunEvent => ({
  type: "group.start",
  id,
  name,
  ...(parentId ? { parentId } : {}),
});
const groupEnd = (id: string, name: string, status = "success", parentId?: string): RunEvent =>
  ({
    type: "group.end",
    id,
    name,
    status,
    durationMs: 1500,
    ...(parentId ? { parentId } : {}),
  }) as RunEvent;
const runEnd: RunEvent = {
  type: "run.end",
  status: "success",
  exitCode: 0,
  durationMs: 2000,
  logDir: "/logs",
  leftovers: [],
};

Deno.test("text groups: nested start/end lines with status and duration, task lines indented, a GROUP table", () => {
  const { r, text } = reporter();
  for (
    const event of [
      groupStart("g1", "tests"),
      groupStart("g2", "unit", "g1"),
      start("t1", "g2"),
      output("t1", "ok\n"),
      end("t1"),
      groupEnd("g2", "unit", "failure", "g1"),
      groupEnd("g1", "tests"),
      start("t2"),
      end("t2"),
      log("inside\nover two lines", "g2"),
      log("forged", "group-77"),
      runEnd,
    ]
  ) r.event(event);
  const lines = text().split("\n");
  assert.deepEqual(lines.slice(0, 10), [
    "┌ tests",
    "  ┌ tests › unit",
    "    ▶ t1: echo t1",
    "    t1 | ok",
    "  └ tests › unit: failure in 1.5s",
    "└ tests: success in 1.5s",
    "▶ t2: echo t2",
    "    inside",
    "    over two lines",
    "forged",
  ], "console lines are indented with their group's tasks; an unknown group is ignored");
  assert.match(
    text(),
    /\nGROUP +STATUS +TIME\ntests +success +1\.5s\ntests › unit +failure +1\.5s\n/,
  );
  assert.doesNotMatch(text(), /::group::|section_start|^--- /m, "no folding outside CI");
});

Deno.test("text groups: GitHub, GitLab and Buildkite folding around a top-level group", () => {
  const events = [
    groupStart("group-1", "build"),
    groupStart("group-2", "inner", "group-1"),
    start("t1", "group-2"),
    end("t1"),
    groupEnd("group-2", "inner", "success", "group-1"),
    groupEnd("group-1", "build", "failure"),
  ];
  const github = reporter({ folding: "github" });
  for (const event of events) github.r.event(event);
  assert.equal(
    github.text(),
    "::group::build\n┌ build\n  ┌ build › inner\n    ▶ t1: echo t1\n  └ build › inner: success in 1.5s\n" +
      "::endgroup::\n└ build: failure in 1.5s\n",
    "nested groups get no markers of their own; the end line shows outside the fold",
  );
  const gitlab = reporter({ folding: "gitlab" });
  for (const event of events) gitlab.r.event(event);
  const unix = Math.floor(CLOCK().getTime() / 1000);
  assert.ok(
    gitlab.text().startsWith(
      `\x1b[0Ksection_start:${unix}:pocketci_group-1[collapsed=true]\r\x1b[0Kbuild\n┌ build\n`,
    ),
    JSON.stringify(gitlab.text()),
  );
  assert.match(
    gitlab.text(),
    new RegExp(`\x1b\\[0Ksection_end:${unix}:pocketci_group-1\r\x1b\\[0K\n└ build`),
  );
  const buildkite = reporter({ folding: "buildkite" });
  for (const event of events) buildkite.r.event(event);
  assert.ok(buildkite.text().startsWith("--- build\n┌ build\n"));
  assert.match(
    buildkite.text(),
    /\n\^\^\^ \+\+\+\n\+\+\+ pocketci\n└ build: failure/,
    "a failed group is expanded",
  );
});

Deno.test("text groups: a second top-level group or an ungrouped task closes the fold; markers escape names", () => {
  const concurrent = reporter({ folding: "github" });
  for (
    const event of [
      groupStart("g1", "a"),
      groupStart("g2", "b"),
      groupEnd("g1", "a"),
      groupEnd("g2", "b"),
      groupStart("g3", "c"),
      start("loose"),
      groupEnd("g3", "c"),
    ]
  ) concurrent.r.event(event);
  assert.equal(
    concurrent.text(),
    "::group::a\n┌ a\n::endgroup::\n┌ b\n└ a: success in 1.5s\n└ b: success in 1.5s\n" +
      "::group::c\n┌ c\n::endgroup::\n▶ loose: echo loose\n└ c: success in 1.5s\n",
  );
  const odd = reporter({ folding: "github" });
  odd.r.event(groupStart("g1", "50%\nthen ::error::x"));
  assert.ok(odd.text().startsWith("::group::50%25 then ::error::x\n"), JSON.stringify(odd.text()));
});

Deno.test("text retries: a ▶ line per attempt, a ↻ line with the wait, one summary row with the attempts", () => {
  const { r, text } = reporter();
  for (
    const event of [
      start("flaky", undefined, 1),
      end("flaky", { status: "failure", code: 1, attempt: 1, maxAttempts: 3, retryInMs: 2000 }),
      start("flaky", undefined, 2),
      end("flaky", { status: "timeout", code: 143, attempt: 2, maxAttempts: 3, retryInMs: 4000 }),
      start("flaky", undefined, 3),
      end("flaky", { attempt: 3, maxAttempts: 3 }),
      runEnd,
    ]
  ) r.event(event);
  assert.match(
    text(),
    /^▶ flaky: echo flaky \(attempt 1 of 3\)\n↻ flaky: attempt 1 of 3 failed \(exit 1\); retrying in 2\.0s\n▶ flaky: echo flaky \(attempt 2 of 3\)\n↻ flaky: attempt 2 of 3 timed out; retrying in 4\.0s\n▶ flaky: echo flaky \(attempt 3 of 3\)\n/,
  );
  assert.match(text(), /\nflaky +success \(3 attempts\) +0 /);
  assert.equal((text().match(/^flaky /gm) ?? []).length, 1, "one row");
});

Deno.test("text retries: cancelled while waiting to retry is cancelled, not skipped", () => {
  const { r, text } = reporter();
  r.event(start("flaky", undefined, 1));
  r.event(
    end("flaky", { status: "failure", code: 1, attempt: 1, maxAttempts: 3, retryInMs: 30000 }),
  );
  r.event(
    end("flaky", {
      status: "cancelled",
      code: null,
      totalMs: undefined,
      attempt: 2,
      maxAttempts: 3,
    }),
  );
  r.event(runEnd);
  assert.match(text(), /\nflaky +cancelled +- +- +-/);
});

Deno.test("--timestamps: every line starts with the time, folding markers never do", () => {
  const { r, text } = reporter({ timestamps: true, folding: "github" });
  r.event(groupStart("g1", "build"));
  r.event(start("t1", "g1"));
  r.event(output("t1", "one\ntwo\n"));
  r.event(end("t1"));
  r.event(groupEnd("g1", "build"));
  const stamp = "2026-01-02T03:04:05.678Z ";
  assert.equal(
    text(),
    `::group::build\n${stamp}┌ build\n${stamp}  ▶ t1: echo t1\n${stamp}  t1 | one\n${stamp}  t1 | two\n` +
      `::endgroup::\n${stamp}└ build: success in 1.5s\n`,
  );
  let raw = "";
  const out = timestamped({ stdout: (t) => raw += t, stderr: () => {} }, CLOCK);
  out.stdout("a");
  out.stdout("b\nc\n");
  out.stdout("");
  out.stdout("d\n");
  assert.equal(
    raw,
    `${stamp}ab\n${stamp}c\n${stamp}d\n`,
    "a line written in pieces gets one stamp",
  );
});

Deno.test("folding is detected from the CI system's variables", () => {
  assert.equal(detectFolding({ GITHUB_ACTIONS: "true", CI: "true" }), "github");
  assert.equal(detectFolding({ GITLAB_CI: "true" }), "gitlab");
  assert.equal(detectFolding({ BUILDKITE: "true" }), "buildkite");
  assert.equal(detectFolding({ GITHUB_ACTIONS: "false", CI: "true" }), undefined);
  assert.equal(detectFolding({}), undefined);
  assert.equal(checkFolding("gitlab"), "gitlab");
  assert.equal(checkFolding("jenkins"), undefined);
});
