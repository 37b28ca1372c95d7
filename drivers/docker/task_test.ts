import assert from "node:assert/strict";
import { exitStatus, initFailureFilter } from "./task.ts";

const enc = (text: string) => new TextEncoder().encode(text);

function collect() {
  const got: string[] = [];
  const filter = initFailureFilter((stream, chunk) =>
    got.push(`${stream}:${new TextDecoder().decode(chunk)}`)
  );
  return { got, filter };
}

Deno.test("init failure filter: tini's exec failure is recognized even when it arrives in pieces", () => {
  const { got, filter } = collect();
  filter.sink("stderr", enc("[FATAL ti"));
  filter.sink("stderr", enc("ni (7)] exec pocketci-nope failed: No such file"));
  assert.deepEqual(got, [], "held back until the line is complete");
  filter.sink("stderr", enc(" or directory\n"));
  filter.flush();
  assert.deepEqual(got, []);
  assert.equal(filter.failure(), "pocketci-nope: No such file or directory");
});

Deno.test("init failure filter: other output passes through at once and in order", () => {
  const { got, filter } = collect();
  filter.sink("stdout", enc("out"));
  filter.sink("stderr", enc("plain error\n"));
  filter.sink("stderr", enc("[FATAL tini later lines are the task's own]\n"));
  filter.flush();
  assert.deepEqual(got, [
    "stdout:out",
    "stderr:plain error\n",
    "stderr:[FATAL tini later lines are the task's own]\n",
  ]);
  assert.equal(filter.failure(), undefined);
});

Deno.test("init failure filter: a look-alike prefix is released (at the latest when the output ends)", () => {
  const { got, filter } = collect();
  filter.sink("stderr", enc("[FA"));
  filter.sink("stdout", enc("x"));
  assert.deepEqual(got, ["stdout:x"]);
  filter.flush();
  assert.deepEqual(got, ["stdout:x", "stderr:[FA"]);
  const other = collect();
  other.filter.sink("stderr", enc("[FATAL tini (1)] something else\n"));
  assert.deepEqual(other.got, ["stderr:[FATAL tini (1)] something else\n"]);
});

Deno.test("exit status: signals inferred from 129-159, OOM reported as SIGKILL", () => {
  assert.deepEqual(exitStatus(0, false), { code: 0 });
  assert.deepEqual(exitStatus(3, false), { code: 3 });
  assert.deepEqual(exitStatus(143, false), { code: 143, signal: 15 });
  assert.deepEqual(exitStatus(137, true), { code: 137, signal: 9, oomKilled: true });
  assert.deepEqual(exitStatus(255, false), { code: 255 });
});
