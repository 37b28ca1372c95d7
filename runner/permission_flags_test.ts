import assert from "node:assert/strict";
import { absoluteGrants, emptyGrants, grantsAsNeeds, parseAllowFlag } from "./permission_flags.ts";

Deno.test("allow flags: lists accumulate, bare flags grant all, -A grants everything", () => {
  const grants = emptyGrants();
  assert.equal(parseAllowFlag("--allow-read=a,b", grants), true);
  assert.equal(parseAllowFlag("--allow-read=c", grants), true);
  assert.equal(parseAllowFlag("--allow-net", grants), true);
  assert.equal(parseAllowFlag("--driver=x", grants), false);
  assert.deepEqual(grants.read, ["a", "b", "c"]);
  assert.equal(grants.net, true);
  assert.equal(grants.run, false);
  const all = emptyGrants();
  parseAllowFlag("-A", all);
  assert.ok(Object.values(all).every((value) => value === true));
});

Deno.test("allow flags: relative paths become absolute; grants become permission needs", () => {
  const grants = absoluteGrants(
    { ...emptyGrants(), read: ["data", "/abs"], env: ["HOME"] },
    "/cwd",
  );
  assert.deepEqual(grants.read, ["/cwd/data", "/abs"]);
  const needs = grantsAsNeeds(grants);
  assert.deepEqual(needs.map((need) => [need.permission, need.values]), [
    ["read", ["/cwd/data", "/abs"]],
    ["env", ["HOME"]],
  ]);
});
