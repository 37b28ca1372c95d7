import assert from "node:assert/strict";
import { mergePermissions, permissionFlags } from "./permissions.ts";

Deno.test("permission needs merge into one flag per permission, unrestricted winning", () => {
  const merged = mergePermissions([
    { permission: "read", values: ["/a", "/b"], reason: "first" },
    { permission: "run", values: ["git"], reason: "git" },
    { permission: "read", values: ["/b", "/c"], reason: "second" },
    { permission: "run", values: true, reason: "anything" },
    { permission: "env", values: ["HOME"], reason: "first" },
    { permission: "read", values: ["/a"], reason: "first" },
    { permission: "net", values: [], reason: "nothing" },
  ]);
  assert.deepEqual(merged, [
    {
      permission: "read",
      values: ["/a", "/b", "/c"],
      flag: "--allow-read=/a,/b,/c",
      reasons: ["first", "second"],
    },
    { permission: "env", values: ["HOME"], flag: "--allow-env=HOME", reasons: ["first"] },
    { permission: "run", values: true, flag: "--allow-run", reasons: ["git", "anything"] },
  ]);
  assert.deepEqual(
    permissionFlags([{ permission: "ffi", values: true, reason: "x" }, {
      permission: "write",
      values: ["/w"],
      reason: "y",
    }]),
    ["--allow-write=/w", "--allow-ffi"],
  );
});

Deno.test("a value with a comma cannot become a flag", () => {
  assert.throws(
    () => permissionFlags([{ permission: "read", values: ["/a,b"], reason: "x" }]),
    /contains a comma/,
  );
});
