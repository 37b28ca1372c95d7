import assert from "node:assert/strict";
import { confineHostPath, exportWriteCheck, normalizeAbsolute } from "./host_paths.ts";

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

Deno.test("host paths: nested symlinks and `..` after a symlink are judged by the real path", async () => {
  const base = await Deno.realPath(await Deno.makeTempDir());
  const outside = await Deno.realPath(await Deno.makeTempDir());
  await Deno.mkdir(`${base}/sub/deep`, { recursive: true });
  await Deno.symlink("hop2", `${base}/hop`);
  await Deno.symlink(outside, `${base}/hop2`);
  await Deno.symlink("sub/deep", `${base}/down`);
  await Deno.symlink("/", `${base}/root`);
  const policy = { baseDir: base, readRoots: [], writeRoots: [] };
  await assert.rejects(confineHostPath(policy, "hop", "read"), /outside/);
  await assert.rejects(confineHostPath(policy, "hop/x", "write"), /outside/);
  await assert.rejects(confineHostPath(policy, `root${outside}`, "read"), /outside/);
  // down/.. is base/sub for the kernel (lexically it would be base itself): still inside.
  assert.equal(await confineHostPath(policy, "down/../x", "read"), `${base}/x`);
  await Deno.remove(base, { recursive: true });
  await Deno.remove(outside, { recursive: true });
});

Deno.test("exportWriteCheck: VCS metadata and the pipeline's sources need an explicit --allow-write", async () => {
  const base = await Deno.realPath(await Deno.makeTempDir());
  const pipeline = `${base}/pipeline.ts`;
  const policy = { baseDir: base, readRoots: [], writeRoots: [], protectedFiles: [pipeline] };
  const check = await exportWriteCheck(policy);
  assert.equal(check(`${base}/out/file.txt`), undefined);
  assert.match(
    check(`${base}/.git/hooks/pre-commit`) ?? "",
    new RegExp(
      `^exportTo refuses to write ${base}/.git/hooks/pre-commit: it is inside version-control metadata \\(\\.git\\).*--allow-write=${base}/.git\``,
    ),
  );
  assert.match(check(`${base}/.git`) ?? "", /version-control metadata/);
  assert.match(check(`${base}/vendor/lib/.hg/hgrc`) ?? "", /\(\.hg\)/);
  assert.match(check(`${base}/a/.svn/entries`) ?? "", /\(\.svn\)/);
  assert.match(
    check(pipeline) ?? "",
    new RegExp(
      `^exportTo refuses to overwrite ${pipeline}: it is one of the pipeline's own source files; name it with \`pocketci run --allow-write=${pipeline}\``,
    ),
  );
  // Granting everything or a parent directory is not naming them.
  const broad = await exportWriteCheck({ ...policy, writeRoots: ["/", base] });
  assert.notEqual(broad(`${base}/.git/hooks/pre-commit`), undefined);
  assert.notEqual(broad(pipeline), undefined);
  const named = await exportWriteCheck({
    ...policy,
    writeRoots: [`${base}/.git/hooks`, pipeline],
  });
  assert.equal(named(`${base}/.git/hooks/pre-commit`), undefined);
  assert.notEqual(named(`${base}/.git/config`), undefined);
  assert.equal(named(pipeline), undefined);
  await Deno.remove(base, { recursive: true });
});
