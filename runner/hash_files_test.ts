import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { EMPTY_FILES_HASH, hashPipelineFiles } from "./hash_files.ts";
import { tempProject } from "../tests/helpers/cli.ts";

function expected(files: [string, string][]): string {
  const hash = createHash("sha256");
  for (const [path, content] of files) {
    hash.update(`${path}\0${new TextEncoder().encode(content).byteLength}\0`).update(content);
  }
  return hash.digest("hex");
}

Deno.test("hashFiles: sorted matches, path and content both hashed; patterns anchored", async () => {
  const dir = await tempProject({
    "package-lock.json": "{}",
    "a/package-lock.json": "{1}",
    "b/c/package-lock.json": "{2}",
    "b/other.txt": "x",
  });
  try {
    const root = await hashPipelineFiles(dir, ["package-lock.json"]);
    assert.deepEqual(root.files, ["package-lock.json"]);
    assert.equal(root.hash, expected([["package-lock.json", "{}"]]));
    const all = await hashPipelineFiles(dir, ["**/package-lock.json"]);
    assert.deepEqual(all.files, [
      "a/package-lock.json",
      "b/c/package-lock.json",
      "package-lock.json",
    ]);
    assert.equal(
      all.hash,
      expected([["a/package-lock.json", "{1}"], ["b/c/package-lock.json", "{2}"], [
        "package-lock.json",
        "{}",
      ]]),
    );
    // Moving content to another path changes the hash.
    await Deno.rename(`${dir}/a/package-lock.json`, `${dir}/a/renamed.json`);
    await Deno.writeTextFile(`${dir}/a/package-lock.json`, "{1}");
    assert.equal((await hashPipelineFiles(dir, ["**/package-lock.json"])).hash, all.hash);
    const moved = await hashPipelineFiles(dir, ["a/*.json"]);
    assert.deepEqual(moved.files, ["a/package-lock.json", "a/renamed.json"]);
    assert.equal((await hashPipelineFiles(dir, ["nothing-*.lock"])).hash, EMPTY_FILES_HASH);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hashFiles: a symlink leading outside the directory is refused; the state dir is skipped", async () => {
  const outside = await tempProject({ "secret.txt": "s" });
  const dir = await tempProject({ "in.txt": "i", ".state/x.txt": "changing" });
  try {
    assert.deepEqual((await hashPipelineFiles(dir, ["**/*.txt"], `${dir}/.state`)).files, [
      "in.txt",
    ]);
    await Deno.symlink(`${outside}/secret.txt`, `${dir}/link.txt`);
    await assert.rejects(
      () => hashPipelineFiles(dir, ["*.txt"]),
      /link\.txt leads outside the pipeline's directory/,
    );
    await Deno.remove(`${dir}/link.txt`);
    await Deno.symlink(outside, `${dir}/linkdir`);
    await assert.rejects(
      () => hashPipelineFiles(dir, ["linkdir/secret.txt"]),
      /leads outside/,
    );
    // A link inside the directory is hashed under its own path.
    await Deno.symlink(`${dir}/in.txt`, `${dir}/alias.txt`);
    assert.deepEqual((await hashPipelineFiles(dir, ["*.txt"])).files, ["alias.txt", "in.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});
