import assert from "node:assert/strict";
import { newRunId } from "./run_id.ts";

Deno.test("run IDs are short DNS labels", () => {
  for (let i = 0; i < 100; i++) {
    const id = newRunId();
    assert.match(id, /^[0-9a-z]{18}$/);
    assert.match(`ci-${id}`, /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
  }
});

Deno.test("run IDs are unique", () => {
  const ids = new Set(Array.from({ length: 10_000 }, () => newRunId()));
  assert.equal(ids.size, 10_000);
});

Deno.test("a later run ID sorts after an earlier one", async () => {
  const first = newRunId();
  await new Promise((resolve) => setTimeout(resolve, 3));
  const second = newRunId();
  assert.ok(first < second, `${first} < ${second}`);
  assert.ok(first.slice(0, 10) < second.slice(0, 10));
});
