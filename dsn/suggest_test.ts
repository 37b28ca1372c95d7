import assert from "node:assert/strict";
import { closest, editDistance, nearMiss } from "./suggest.ts";

Deno.test("editDistance", () => {
  assert.equal(editDistance("", ""), 0);
  assert.equal(editDistance("token", "token"), 0);
  assert.equal(editDistance("tokn", "token"), 1);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
  // A swap of two adjacent letters is one edit.
  assert.equal(editDistance("hots", "host"), 1);
  assert.equal(editDistance("rn", "run"), 1);
  assert.equal(editDistance("ab", "ba"), 1);
});

Deno.test("nearMiss: the closest known name at most two edits away, ignoring case", () => {
  const known = ["host", "token", "max_workers", "location"];
  assert.equal(nearMiss("hots", known), "host");
  assert.equal(nearMiss("HOST", known), "host");
  assert.equal(nearMiss("tokn", known), "token");
  assert.equal(nearMiss("max_worker", known), "max_workers");
  assert.equal(nearMiss("max_workerzzz", known), undefined);
  assert.equal(nearMiss("region", known), undefined);
  assert.equal(nearMiss("timeout", known), undefined);
});

Deno.test("closest suggests plausible typos only", () => {
  const known = ["token", "max_workers", "location", "image"];
  assert.equal(closest("tokn", known), "token");
  assert.equal(closest("TOKEN", known), "token");
  assert.equal(closest("max_worker", known), "max_workers");
  assert.equal(closest("lokation", known), "location");
  assert.equal(closest("region", known), undefined);
  assert.equal(closest("x", known), undefined);
});
