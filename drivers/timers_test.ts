import assert from "node:assert/strict";
import { longTimeout, MAX_TIMER_MS, sleep } from "./timers.ts";

const HOUR = 3_600_000;

/** Replaces the global timers with a fake clock for `body`; returns what was scheduled. */
function withFakeTimers(body: (clock: { advance(ms: number): void; delays: number[] }) => void) {
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  let now = 0;
  let nextId = 1;
  const pending = new Map<number, { at: number; run: () => void }>();
  const delays: number[] = [];
  // deno-lint-ignore no-explicit-any
  (globalThis as any).setTimeout = (run: () => void, ms: number) => {
    // What Deno does with a delay it cannot hold: fire on the next turn.
    const effective = ms > MAX_TIMER_MS ? 1 : ms;
    delays.push(ms);
    pending.set(nextId, { at: now + effective, run });
    return nextId++;
  };
  // deno-lint-ignore no-explicit-any
  (globalThis as any).clearTimeout = (id: number) => pending.delete(id);
  const advance = (ms: number) => {
    const until = now + ms;
    while (true) {
      const due = [...pending].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at);
      if (due.length === 0) break;
      const [id, timer] = due[0];
      pending.delete(id);
      now = timer.at;
      timer.run();
    }
    now = until;
  };
  try {
    body({ advance, delays });
  } finally {
    globalThis.setTimeout = realSet;
    globalThis.clearTimeout = realClear;
  }
}

Deno.test("longTimeout: a 600 h timer does not fire early and fires after 600 h", () => {
  withFakeTimers(({ advance, delays }) => {
    let fired = 0;
    longTimeout(() => fired++, 600 * HOUR);
    advance(1);
    assert.equal(fired, 0, "fired at once, as a bare setTimeout does");
    advance(600 * HOUR - 2);
    assert.equal(fired, 0);
    advance(1);
    assert.equal(fired, 1);
    advance(1000 * HOUR);
    assert.equal(fired, 1, "fires once");
    assert.ok(delays.every((ms) => ms <= MAX_TIMER_MS), `delays: ${delays}`);
    assert.equal(delays.reduce((a, b) => a + b, 0), 600 * HOUR);
  });
});

Deno.test("longTimeout: clear() stops a chained timer between links; Infinity never fires", () => {
  withFakeTimers(({ advance }) => {
    let fired = 0;
    const timer = longTimeout(() => fired++, 600 * HOUR);
    advance(MAX_TIMER_MS + 10);
    timer.clear();
    advance(1000 * HOUR);
    assert.equal(fired, 0);
    longTimeout(() => fired++, Infinity);
    advance(100_000 * HOUR);
    assert.equal(fired, 0);
  });
});

Deno.test("longTimeout: short delays behave as setTimeout", async () => {
  const started = performance.now();
  await new Promise<void>((resolve) => longTimeout(resolve, 20));
  assert.ok(performance.now() - started >= 15);
});

Deno.test("sleep: a 600 h sleep is still pending after a tick and ends when its signal aborts", async () => {
  const abort = new AbortController();
  let done = false;
  const slept = sleep(600 * HOUR, abort.signal).then(() => done = true);
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(done, false);
  abort.abort();
  await slept;
  assert.equal(done, true);
});
