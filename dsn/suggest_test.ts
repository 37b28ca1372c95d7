import assert from "node:assert/strict";
import { closest, editDistance } from "./suggest.ts";

Deno.test("editDistance", () => {
  assert.equal(editDistance("", ""), 0);
  assert.equal(editDistance("token", "token"), 0);
  assert.equal(editDistance("tokn", "token"), 1);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
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
