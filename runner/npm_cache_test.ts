import assert from "node:assert/strict";
import { parsePackageSpecifier, registryFolder, satisfies } from "./npm_cache.ts";

Deno.test("satisfies: the requirement forms npm and Deno use", () => {
  const yes: [string, string][] = [
    ["1.4.0", ""],
    ["1.4.0", "*"],
    ["1.4.0", "^1.2"],
    ["1.4.0", "~1.4.0"],
    ["1.4.0", "1"],
    ["1.4.0", "1.x"],
    ["1.4.0", "1.4.0"],
    ["1.4.0", ">=1.2 <2"],
    ["1.4.0", "2 || 1"],
    ["0.2.5", "^0.2.1"],
    ["0.0.3", "^0.0.3"],
    ["2.0.0", ">1"],
    ["1.9.9", "<=1"],
  ];
  const no: [string, string][] = [
    ["1.4.0", "^2"],
    ["1.4.0", "~1.3.0"],
    ["1.4.0", "1.3"],
    ["0.3.0", "^0.2.1"],
    ["0.0.4", "^0.0.3"],
    ["1.9.9", ">1"],
    ["2.0.0", "<=1"],
    ["1.4.0", "<1.4.0"],
    ["2.0.0-beta.1", "^1"],
    ["registry.json", ""],
  ];
  for (const [version, requirement] of yes) {
    assert.equal(satisfies(version, requirement), true, `${version} ${requirement}`);
  }
  for (const [version, requirement] of no) {
    assert.equal(satisfies(version, requirement), false, `${version} ${requirement}`);
  }
});

Deno.test("parsePackageSpecifier and registryFolder", () => {
  assert.deepEqual(parsePackageSpecifier("npm:@types/node@^20/fs"), {
    registry: "npm",
    name: "@types/node",
    version: "^20",
  });
  assert.deepEqual(parsePackageSpecifier("npm:/zod"), {
    registry: "npm",
    name: "zod",
    version: "",
  });
  assert.equal(parsePackageSpecifier("npm:"), undefined);
  assert.equal(registryFolder("https://registry.npmjs.org/"), "registry.npmjs.org");
  assert.equal(registryFolder("http://127.0.0.1:9/"), "127.0.0.1_9");
});
