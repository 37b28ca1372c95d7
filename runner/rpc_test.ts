import assert from "node:assert/strict";
import {
  encodeFrame,
  FrameReader,
  ProtocolError,
  userFrame,
  validatePipelineMessage,
} from "./rpc.ts";

Deno.test("rpc frames: messages split anywhere come out whole; bytes survive as bytes", () => {
  const bytes = new Uint8Array([0, 1, 2, 255]);
  const frames = [
    encodeFrame({ kind: "log", level: "info", message: "héllo" }),
    encodeFrame({
      kind: "call",
      id: 1,
      method: "writeFiles",
      args: ["v", { f: bytes, "\u0000x": 1 }],
    }),
  ];
  const all = new Uint8Array(frames[0].length + frames[1].length);
  all.set(frames[0]);
  all.set(frames[1], frames[0].length);
  const reader = new FrameReader();
  const out: unknown[] = [];
  for (let i = 0; i < all.length; i += 3) out.push(...reader.push(all.subarray(i, i + 3)));
  assert.equal(out.length, 2);
  assert.deepEqual(out[0], { kind: "log", level: "info", message: "héllo" });
  const args = (out[1] as { args: [string, Record<string, unknown>] }).args;
  assert.ok(args[1].f instanceof Uint8Array);
  assert.deepEqual([...(args[1].f as Uint8Array)], [0, 1, 2, 255]);
  assert.equal(reader.pending, 0);
});

Deno.test("rpc frames: an oversized length or a body that is not JSON is a protocol error", () => {
  const huge = new Uint8Array(8);
  new DataView(huge.buffer).setUint32(0, 0xffffffff);
  assert.throws(() => new FrameReader(1024).push(huge), /a message of 4294967295 bytes/);
  const junk = new Uint8Array([0, 0, 0, 3, 0x7b, 0x7b, 0x7b]);
  assert.throws(() => new FrameReader().push(junk), ProtocolError);
});

Deno.test("rpc validation: null, unknown kinds and methods, bad ids and argument lists are refused by name", () => {
  const refused: [unknown, RegExp][] = [
    [null, /not an object/],
    [[], /not an object/],
    [{ kind: "boom" }, /unknown kind "boom"/],
    [{ kind: "call", id: 0, method: "runTask", args: [], streamOutput: false }, /id/],
    [{ kind: "call", id: 1.5, method: "runTask", args: [], streamOutput: false }, /id/],
    [
      { kind: "call", id: 1, method: "constructor", args: [], streamOutput: false },
      /unknown method/,
    ],
    [{ kind: "call", id: 1, method: "runTask", args: [1, 2], streamOutput: false }, /at most 1/],
    [{ kind: "call", id: 1, method: "runTask", args: {}, streamOutput: false }, /arguments/],
    [{ kind: "call", id: 1, method: "runTask", args: [], streamOutput: "yes" }, /streamOutput/],
    [{ kind: "log", level: "debug", message: "x" }, /level "debug"/],
    [{ kind: "log", level: "info", message: 42 }, /not a string/],
    [{ kind: "done", error: "boom" }, /not an object/],
    [{ kind: "loaded" }, /not a string/],
    // A pipeline process that bypasses pipeline()'s checks cannot ask for absurd machines.
    [{ kind: "loaded", name: "p", resources: { cpu: 1e9, memoryBytes: 0 } }, /resources hint/],
    [{ kind: "loaded", name: "p", resources: { cpu: -1, memoryBytes: 0 } }, /resources hint/],
    [{ kind: "loaded", name: "p", resources: { cpu: 1, memoryBytes: "8Gi" } }, /resources hint/],
    [
      { kind: "loaded", name: "p", resources: { cpu: 1, memoryBytes: 1, gpu: 1 } },
      /resources hint/,
    ],
    [{ kind: "loaded", name: "p", resources: "big" }, /resources hint/],
  ];
  for (const [value, pattern] of refused) {
    assert.throws(() => validatePipelineMessage(value), pattern, JSON.stringify(value));
  }
  assert.deepEqual(
    validatePipelineMessage({ kind: "loaded", name: "p", resources: { cpu: 4, memoryBytes: 8 } }),
    { kind: "loaded", name: "p", resources: { cpu: 4, memoryBytes: 8 } },
  );
  const long = validatePipelineMessage({
    kind: "log",
    level: "warn",
    message: "x".repeat(100_000),
  });
  assert.ok(long.kind === "log" && long.message.length < 70_000 && long.message.endsWith("[cut]"));
  assert.deepEqual(
    validatePipelineMessage({
      kind: "call",
      id: 3,
      method: "exportTo",
      args: ["v", "d"],
      streamOutput: false,
      extra: 1,
    }),
    { kind: "call", id: 3, method: "exportTo", args: ["v", "d"], streamOutput: false },
  );
});

Deno.test("rpc userFrame: the first frame outside PocketCI's own code", () => {
  const own = new URL("../dsl/task.ts", import.meta.url).href;
  assert.equal(
    userFrame([`at ${own}:1:2`, "at file:///work/ci/my%20pipe.ts:12:5"]),
    " (at /work/ci/my pipe.ts:12:5)",
  );
  assert.equal(userFrame([`at ${own}:1:2`]), "");
});

Deno.test("rpc frames: a large frame arriving in small chunks is joined once (linear time)", () => {
  const body = "x".repeat(32 * 1024 * 1024);
  const frame = encodeFrame({ kind: "log", level: "info", message: body });
  const reader = new FrameReader();
  const started = performance.now();
  const out: unknown[] = [];
  for (let i = 0; i < frame.length; i += 64 * 1024) {
    out.push(...reader.push(frame.subarray(i, i + 64 * 1024)));
  }
  assert.equal(out.length, 1);
  assert.equal((out[0] as { message: string }).message.length, body.length);
  // Re-joining everything received on each chunk took minutes here (512 chunks of 64 KiB).
  assert.ok(performance.now() - started < 5_000, `${performance.now() - started} ms`);
});

Deno.test("rpc validation: a log message's group ID must look like one", () => {
  assert.deepEqual(
    validatePipelineMessage({ kind: "log", level: "info", message: "m", groupId: "group-3" }),
    { kind: "log", level: "info", message: "m", groupId: "group-3" },
  );
  for (const groupId of [3, "group-", "x".repeat(100), "group-1\n::group::x"]) {
    assert.throws(
      () => validatePipelineMessage({ kind: "log", level: "info", message: "m", groupId }),
      /a log message whose groupId is not a group ID/,
    );
  }
});
