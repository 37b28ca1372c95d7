import assert from "node:assert/strict";
import { commandLine, JsonReporter, TextReporter } from "./reporters.ts";
import type { RunEvent } from "./events.ts";

function capture() {
  const out = { stdout: "", stderr: "" };
  return {
    out,
    output: {
      stdout: (text: string) => out.stdout += text,
      stderr: (text: string) => out.stderr += text,
    },
  };
}

const start = (id: string, name: string): RunEvent => ({
  type: "task.start",
  id,
  name,
  kind: "task",
  command: ["sh", "-c", "echo hi\necho there"],
});

Deno.test("text reporter: prefixed lines, distinct labels for equal names, partial lines joined", () => {
  const { out, output } = capture();
  const reporter = new TextReporter(output, { colour: false, driver: "native" });
  reporter.event(start("a-1", "a"));
  reporter.event(start("a-2", "a"));
  reporter.event({ type: "task.output", id: "a-1", name: "a", stream: "stdout", data: "hel" });
  reporter.event({ type: "task.output", id: "a-2", name: "a", stream: "stderr", data: "err\n" });
  reporter.event({ type: "task.output", id: "a-1", name: "a", stream: "stdout", data: "lo\nwor" });
  reporter.event({
    type: "task.end",
    id: "a-1",
    name: "a",
    kind: "task",
    status: "success",
    code: 0,
    durationMs: 5,
    allowFailure: false,
  });
  assert.equal(out.stdout, "a | hello\na | wor\n");
  assert.match(out.stderr, /^a#2 \| err$/m);
  assert.match(out.stderr, /▶ a: sh -c echo hi; echo there/);
});

Deno.test("text reporter: a line without an end is printed in bounded pieces", () => {
  const { out, output } = capture();
  const reporter = new TextReporter(output, { colour: false, driver: "native" });
  reporter.event(start("t-1", "t"));
  for (let i = 0; i < 20; i++) {
    reporter.event({
      type: "task.output",
      id: "t-1",
      name: "t",
      stream: "stdout",
      data: "x".repeat(10_000),
    });
  }
  assert.ok(out.stdout.length >= 128 * 1024, "long lines are flushed before the task ends");
});

Deno.test("text reporter: colour only when asked", () => {
  const plain = capture();
  new TextReporter(plain.output, { colour: false, driver: "native" }).event(start("x-1", "x"));
  assert.ok(!plain.out.stderr.includes("\u001b["));
  const coloured = capture();
  new TextReporter(coloured.output, { colour: true, driver: "native" }).event(start("x-1", "x"));
  assert.ok(coloured.out.stderr.includes("\u001b["));
});

Deno.test("json reporter: one versioned object per line", () => {
  const { out, output } = capture();
  new JsonReporter(output).event({ type: "warning", message: "w" });
  const parsed = JSON.parse(out.stdout);
  assert.equal(parsed.v, 1);
  assert.equal(parsed.type, "warning");
  assert.ok(out.stdout.endsWith("}\n"));
});

Deno.test("command lines are one short line", () => {
  assert.equal(commandLine(["echo", "a"]), "echo a");
  assert.equal(commandLine(["sh", "-c", "a\n  b"]), "sh -c a; b");
  assert.equal(commandLine(["x".repeat(200)]).length, 120);
});
