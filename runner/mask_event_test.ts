import assert from "node:assert/strict";
import type { RunEvent } from "./events.ts";
import { Masker } from "./mask.ts";
import { maskEvent } from "./mask_event.ts";

const SECRET = "run7secret";
const masker = new Masker([SECRET], { protect: [`/state/${SECRET}`] });

Deno.test("maskEvent: run IDs, paths and task IDs stay as they are; names, commands, messages are masked", () => {
  const logDir = `/state/${SECRET}/logs/r-${SECRET}`;
  const events: [RunEvent, RunEvent][] = [
    [
      {
        type: "run.start",
        runId: `r-${SECRET}`,
        pipeline: `/src/${SECRET}/p.ts`,
        driver: "native",
        namespace: `ns-${SECRET}`,
        logDir,
      },
      {
        type: "run.start",
        runId: `r-${SECRET}`,
        pipeline: `/src/${SECRET}/p.ts`,
        driver: "native",
        namespace: "ns-***",
        logDir,
      },
    ],
    [
      {
        type: "task.start",
        id: `t-${SECRET}-1`,
        name: `t ${SECRET}`,
        kind: "task",
        command: ["echo", SECRET],
        image: `img:${SECRET}`,
      },
      {
        type: "task.start",
        id: `t-${SECRET}-1`,
        name: "t ***",
        kind: "task",
        command: ["echo", "***"],
        image: "img:***",
      },
    ],
    [
      { type: "warning", message: `could not remove ${SECRET}` },
      { type: "warning", message: "could not remove ***" },
    ],
    [
      {
        type: "run.end",
        status: "failure",
        exitCode: 1,
        durationMs: 5,
        logDir,
        error: `failed: ${SECRET}`,
        failedTask: { id: `t-${SECRET}-1`, name: SECRET, lastLines: [`x ${SECRET}`] },
        leftovers: [
          { kind: "dir", id: `/state/${SECRET}/runs/x`, reason: `busy ${SECRET}` },
          { kind: "container", id: `pocketci-ns-${SECRET}-r1`, reason: "gone" },
        ],
      },
      {
        type: "run.end",
        status: "failure",
        exitCode: 1,
        durationMs: 5,
        logDir,
        error: "failed: ***",
        failedTask: { id: `t-${SECRET}-1`, name: "***", lastLines: ["x ***"] },
        leftovers: [
          { kind: "dir", id: `/state/${SECRET}/runs/x`, reason: "busy ***" },
          { kind: "container", id: "pocketci-ns-***-r1", reason: "gone" },
        ],
      },
    ],
  ];
  for (const [event, expected] of events) assert.deepEqual(maskEvent(masker, event), expected);
});

Deno.test("maskEvent: fields it does not know are masked (a new event field is never shown raw)", () => {
  const event = {
    type: "log",
    level: "info",
    message: SECRET,
    extra: SECRET,
  } as unknown as RunEvent;
  assert.deepEqual(maskEvent(masker, event), { ...event, message: "***", extra: "***" });
});
