import assert from "node:assert/strict";
import { confineHostPath, normalizeAbsolute } from "./host_paths.ts";

Deno.test("host paths: relative paths resolve inside the pipeline directory", async () => {
  const base = await Deno.realPath(await Deno.makeTempDir());
  const policy = { baseDir: base, readRoots: [], writeRoots: [] };
  assert.equal(await confineHostPath(policy, "./src", "read"), `${base}/src`);
  assert.equal(await confineHostPath(policy, "out/new/dir", "write"), `${base}/out/new/dir`);
  await assert.rejects(confineHostPath(policy, "../elsewhere", "read"), /--allow-read=/);
  await assert.rejects(confineHostPath(policy, "/etc", "write"), /--allow-write=\/etc/);
  await Deno.remove(base, { recursive: true });
});

Deno.test("host paths: a symlink pointing outside is refused; granted roots are allowed", async () => {
  const base = await Deno.realPath(await Deno.makeTempDir());
  const outside = await Deno.realPath(await Deno.makeTempDir());
  await Deno.symlink(outside, `${base}/link`);
  const policy = { baseDir: base, readRoots: [], writeRoots: [] };
  await assert.rejects(confineHostPath(policy, "link", "read"), /outside/);
  await assert.rejects(confineHostPath(policy, "link/new", "write"), /outside/);
  const granted = { baseDir: base, readRoots: [outside], writeRoots: [] };
  assert.equal(await confineHostPath(granted, "link", "read"), `${base}/link`);
  await Deno.remove(base, { recursive: true });
  await Deno.remove(outside, { recursive: true });
});

Deno.test("normalizeAbsolute resolves dots", () => {
  assert.equal(normalizeAbsolute("/a/./b/../c//d"), "/a/c/d");
  assert.equal(normalizeAbsolute("/.."), "/");
});
