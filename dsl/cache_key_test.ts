import assert from "node:assert/strict";
import { checkCacheKey, checkCacheOptions, checkHashPatterns } from "./validate.ts";
import { checkVolumeRequest } from "../runner/check_request.ts";

Deno.test("cache keys: arrays join with '-', printable ASCII only, at most 512 characters", () => {
  assert.equal(checkCacheKey("key", ["npm", "linux", "abc"]), "npm-linux-abc");
  assert.equal(checkCacheKey("key", "v1"), "v1");
  assert.throws(() => checkCacheKey("key", "with space"), /printable ASCII without spaces/);
  assert.throws(() => checkCacheKey("key", "tab\there"), /printable ASCII/);
  assert.throws(() => checkCacheKey("key", "naïve"), /printable ASCII/);
  assert.throws(() => checkCacheKey("key", ["npm", ""]), /non-empty strings/);
  assert.throws(() => checkCacheKey("key", []), /non-empty/);
  assert.throws(() => checkCacheKey("key", 42), /non-empty string or an array/);
  assert.equal(checkCacheKey("key", "k".repeat(512)).length, 512);
  assert.throws(() => checkCacheKey("key", ["k".repeat(256), "k".repeat(256)]), /513 characters/);
});

Deno.test("cache options: restoreKeys need a key and are joined like keys", () => {
  assert.deepEqual(checkCacheOptions("npm", ["npm", "h"], ["npm-", ["npm", "old"]]), {
    key: "npm-h",
    restoreKeys: ["npm-", "npm-old"],
  });
  assert.deepEqual(checkCacheOptions("npm", undefined, undefined), {});
  assert.throws(() => checkCacheOptions("npm", undefined, ["npm-"]), /restoreKeys but no key/);
  assert.throws(() => checkCacheOptions("npm", "k", "npm-"), /array of key prefixes/);
});

Deno.test("the runner checks keys again: bad keys, and keys on a volume, are refused", () => {
  assert.throws(
    () => checkVolumeRequest({ name: "npm", kind: "cache", key: "a b" }),
    /printable ASCII/,
  );
  assert.throws(
    () => checkVolumeRequest({ name: "src", kind: "volume", key: "k" }),
    /takes no key/,
  );
  assert.deepEqual(checkVolumeRequest({ name: "npm", kind: "cache", key: "k" }).key, "k");
});

Deno.test("hashFiles patterns: relative, without '..' or a leading '/'", () => {
  assert.deepEqual(checkHashPatterns(["a/*.lock", "**/x"]), ["a/*.lock", "**/x"]);
  assert.throws(() => checkHashPatterns([]), /at least one glob/);
  assert.throws(() => checkHashPatterns(["../x"]), /without "\.\."/);
  assert.throws(() => checkHashPatterns(["a/../../x"]), /without "\.\."/);
  assert.throws(() => checkHashPatterns(["/etc/passwd"]), /leading "\/"/);
  assert.throws(() => checkHashPatterns([""]), /relative/);
});

Deno.test("cache(name, { key, restoreKeys }) sends the joined keys and exposes hit and restoredKey", async () => {
  const { installHost } = await import("./host.ts");
  const { cache, hashFiles } = await import("./mod.ts");
  const requests: unknown[] = [];
  installHost(
    {
      createVolume: (request) => {
        requests.push(request);
        return Promise.resolve({
          id: "c-1",
          name: request.name,
          kind: request.kind,
          key: request.key,
          hit: "restored",
          restoredKey: "npm-old",
        });
      },
      hashFiles: (patterns) => Promise.resolve(`h(${patterns.join(",")})`),
    } as Parameters<typeof installHost>[0],
  );
  try {
    const key = ["npm", await hashFiles("package-lock.json", "x/*.lock")];
    const npm = await cache("npm", { key, restoreKeys: [["npm"], "npm-"] });
    assert.deepEqual(requests, [{
      name: "npm",
      kind: "cache",
      key: "npm-h(package-lock.json,x/*.lock)",
      restoreKeys: ["npm", "npm-"],
    }]);
    assert.equal(npm.hit, "restored");
    assert.equal(npm.restoredKey, "npm-old");
    assert.equal(npm.key, "npm-h(package-lock.json,x/*.lock)");
    await assert.rejects(() => cache("npm", { key: "a b" }), /printable ASCII/);
    await assert.rejects(() => hashFiles("../up"), /without "\.\."/);
  } finally {
    installHost(undefined);
  }
});
