import assert from "node:assert/strict";
import { fromFileUrl, toFileUrl } from "./file_url.ts";

Deno.test("file URLs round-trip awkward paths", () => {
  for (const path of ["/a/b.ts", "/with space/x #1?.ts", "/per%cent/ü.ts"]) {
    const url = toFileUrl(path);
    assert.ok(url.startsWith("file:///"));
    assert.equal(new URL(url).protocol, "file:");
    assert.equal(fromFileUrl(url), path);
  }
});
