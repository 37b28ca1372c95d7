import assert from "node:assert/strict";
import { describeDuration, isDuration, parseDuration } from "./duration.ts";
import { DsnError } from "./types.ts";

const VALID: ReadonlyArray<readonly [string, number]> = [
  ["0", 0],
  ["0s", 0],
  ["250ms", 250],
  ["10s", 10_000],
  ["5m", 300_000],
  ["1h", 3_600_000],
  ["1h30m", 5_400_000],
  ["1h30m15s", 5_415_000],
  ["1.5h", 5_400_000],
  ["2m500ms", 120_500],
];

for (const [text, ms] of VALID) {
  Deno.test(`parseDuration(${JSON.stringify(text)}) = ${ms}`, () => {
    assert.equal(parseDuration(text), ms);
    assert.equal(isDuration(text), true);
  });
}

for (const text of ["", "10", "10 s", "s", "5d", "-1s", "1h 30m", "1.s", "10S", "abc", "5m!"]) {
  Deno.test(`parseDuration(${JSON.stringify(text)}) fails`, () => {
    assert.equal(isDuration(text), false);
    assert.throws(() => parseDuration(text), (error: unknown) => {
      assert.ok(error instanceof DsnError);
      assert.match(error.message, /expected a number with a unit \(ms, s, m, h\), e\.g\. 10s/);
      return true;
    });
  });
}

const DESCRIBED: Array<[number, string]> = [
  [0, "0ms"],
  [1, "1ms"],
  [850, "850ms"],
  [2_540, "2.5s"],
  [45_900, "45s"],
  [90_000, "1m30s"],
  [3_600_000, "1h"],
  [2 * 3_600_000 + 5 * 60_000, "2h05m"],
  [7 * 86_400_000, "7d"],
  [8 * 86_400_000 + 3 * 3_600_000 + 59 * 60_000, "8d3h"],
];

for (const [ms, text] of DESCRIBED) {
  Deno.test(`describeDuration(${ms}) = ${text}`, () => {
    assert.equal(describeDuration(ms), text);
  });
}
