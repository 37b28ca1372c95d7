import assert from "node:assert/strict";
import { Semaphore } from "./semaphore.ts";

Deno.test("semaphore admits up to the limit and queues the rest in order", async () => {
  const semaphore = new Semaphore(2);
  const order: number[] = [];
  const a = await semaphore.acquire();
  const b = await semaphore.acquire();
  const c = semaphore.acquire().then((release) => (order.push(3), release));
  const d = semaphore.acquire().then((release) => (order.push(4), release));
  assert.equal(semaphore.active, 2);
  a();
  (await c)();
  b();
  b();
  (await d)();
  assert.deepEqual(order, [3, 4]);
  assert.equal(semaphore.active, 0);
});

Deno.test("semaphore: an aborted wait rejects and frees its place", async () => {
  const semaphore = new Semaphore(1);
  const held = await semaphore.acquire();
  const controller = new AbortController();
  const waiting = semaphore.acquire(controller.signal);
  controller.abort("cancelled");
  await assert.rejects(waiting);
  held();
  assert.equal(semaphore.active, 0);
  await assert.rejects(semaphore.acquire(controller.signal));
});
