import assert from "node:assert/strict";
import { commandLine, JsonReporter, TextReporter } from "./reporters.ts";
import type { RunEvent } from "./events.ts";
import { SH_PRELUDE } from "../dsl/config.ts";

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

/** The text reporter's output for chunks of one task's stdout, the plain way. */
function expectedText(label: string, chunks: readonly string[], max: number): string {
  let text = "";
  let partial = "";
  for (const chunk of chunks) {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop()!;
    for (const line of lines) text += `${label} | ${line}\n`;
    for (; partial.length > max; partial = partial.slice(max)) {
      text += `${label} | ${partial.slice(0, max)}\n`;
    }
  }
  return partial === "" ? text : text + `${label} | ${partial}\n`;
}

Deno.test("text reporter: any chunking prints whole lines, long unterminated ones in 64 KiB pieces", () => {
  const max = 64 * 1024;
  let seed = 11;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return (seed >>> 8) % n;
  };
  for (let round = 0; round < 30; round++) {
    const { out, output } = capture();
    const writes: string[] = [];
    const reporter = new TextReporter({
      stdout: (text) => {
        writes.push(text);
        output.stdout(text);
      },
      stderr: output.stderr,
    }, { colour: false, driver: "native" });
    reporter.event(start("t-1", "t"));
    const chunks: string[] = [];
    for (let i = random(12); i >= 0; i--) {
      let chunk = "";
      for (let parts = random(6); parts >= 0; parts--) {
        chunk += ["\n", "ab\n", "x".repeat(random(3) * 50_000 + random(40)), "é"][random(4)];
      }
      chunks.push(chunk);
    }
    for (const data of chunks) {
      const before = writes.length;
      reporter.event({ type: "task.output", id: "t-1", name: "t", stream: "stdout", data });
      assert.ok(writes.length - before <= 1, "one write per chunk");
    }
    reporter.event({
      type: "task.end",
      id: "t-1",
      name: "t",
      kind: "task",
      status: "success",
      code: 0,
      durationMs: 5,
      allowFailure: false,
    });
    assert.equal(out.stdout, expectedText("t", chunks, max), `round ${round}`);
  }
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

const end = (
  id: string,
  name: string,
  extra: Partial<Extract<RunEvent, { type: "task.end" }>> = {},
): RunEvent => ({
  type: "task.end",
  id,
  name,
  kind: "task",
  status: "success",
  code: 0,
  durationMs: 500,
  totalMs: 2300,
  allowFailure: false,
  ...extra,
});

const runEnd: RunEvent = {
  type: "run.end",
  status: "cancelled",
  exitCode: 130,
  durationMs: 3000,
  logDir: "/tmp/logs",
  leftovers: [],
};

/** The summary table's lines (header first) from the text reporter's stderr. */
function table(stderr: string): string[] {
  const lines = stderr.split("\n");
  const header = lines.findIndex((line) => line.startsWith("TASK "));
  assert.ok(header >= 0, stderr);
  const rows = lines.slice(header);
  return rows.slice(0, rows.indexOf(""));
}

Deno.test("summary: rows in start order; a task that never started is skipped; the driver once in the header", () => {
  const { out, output } = capture();
  const reporter = new TextReporter(output, { colour: false, driver: "docker" });
  reporter.event(start("slow-1", "slow"));
  reporter.event(start("fast-2", "fast"));
  reporter.event(end("fast-2", "fast", { totalMs: 1200, durationMs: 300 }));
  // Queued behind --parallelism when the run was cancelled: a task.end without a start.
  reporter.event(end("queued-3", "queued", {
    status: "cancelled",
    code: null,
    durationMs: 0,
    totalMs: undefined,
    error: "the run was cancelled before the task started",
  }));
  reporter.event(end("slow-1", "slow", { status: "cancelled", code: 143 }));
  reporter.event(runEnd);
  const rows = table(out.stderr).map((line) => line.split(/\s{2,}/));
  assert.deepEqual(rows, [
    ["TASK", "STATUS", "CODE", "TOTAL", "RUN", "(driver: docker)"],
    ["slow", "cancelled", "143", "2.3s", "500ms"],
    ["fast", "success", "0", "1.2s", "300ms"],
    ["queued", "skipped", "-", "-", "-"],
  ]);
  assert.equal(out.stderr.split("docker").length - 1, 1, "the driver is printed once");
});

Deno.test("summary: a task that could not run is an error, not skipped, and has no durations", () => {
  const { out, output } = capture();
  const reporter = new TextReporter(output, { colour: false, driver: "native" });
  reporter.event(start("bad-1", "bad"));
  reporter.event(end("bad-1", "bad", {
    status: "error",
    code: null,
    durationMs: 0,
    totalMs: undefined,
    error: 'image "/etc/passwd" is not a valid image reference',
  }));
  reporter.event({ ...runEnd, status: "failure", exitCode: 1 });
  assert.deepEqual(table(out.stderr)[1].split(/\s{2,}/), ["bad", "error", "-", "-", "-"]);
  assert.match(out.stderr, /✗ bad: image "\/etc\/passwd" is not a valid image reference/);
});

Deno.test("text reporter: a sandbox call gets its ▶ line like a task", () => {
  const { out, output } = capture();
  const reporter = new TextReporter(output, { colour: false, driver: "docker" });
  reporter.event({ type: "sandbox.start", id: "dev-1", name: "dev" });
  reporter.event({
    type: "task.start",
    id: "dev-exec-2",
    name: "dev",
    kind: "exec",
    command: ["sh", "-c", SH_PRELUDE + "make test"],
  });
  assert.equal(out.stderr, "▶ dev: sh -c make test\n");
});

Deno.test("command lines leave out sh()'s prelude but show run('sh', '-c', ...) as given", () => {
  assert.equal(commandLine(["sh", "-c", SH_PRELUDE + "echo a\necho b"]), "sh -c echo a; echo b");
  assert.equal(commandLine(["sh", "-c", "set -eu; echo a"]), "sh -c set -eu; echo a");
  assert.equal(commandLine(["bash", "-c", SH_PRELUDE + "x"]), `bash -c ${SH_PRELUDE}x`);
});
