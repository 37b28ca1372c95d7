import assert from "node:assert/strict";
import { findSpecifiers, moduleTexts } from "./import_specifiers.ts";
import { ImportRefusedError, scanImports } from "./import_scan.ts";
import { DSL_ENTRY } from "./import_map.ts";

function specifiers(text: string): string[] {
  return findSpecifiers(text).map((found) => found.specifier);
}

Deno.test("findSpecifiers: every import form", () => {
  const text = [
    `import a from "./a.ts";`,
    `import "./b.ts";`,
    `const c = await import("./c.ts");`,
    `export * from './d.ts';`,
    `export { e } from "./e.ts";`,
    `const f = require("./f.cjs");`,
    `/// <reference path="./g.d.ts" />`,
    `/// <reference types="./h.d.ts" />`,
    `/// <reference lib="deno.ns" />`,
    `// @deno-types="./i.d.ts"`,
    `// @ts-types='./j.d.ts'`,
    `// @ts-types=./k.d.ts`,
    `/** @jsxImportSource ./l */`,
    `/** @jsxImportSourceTypes ./m */`,
    `import data from "./n.json" with { type: "json" };`,
    `import text from "./o.txt" with { type: "text" };`,
    "const p = await import(`./p.ts`);",
    `import type { Q } from "./q.ts";`,
  ].join("\n");
  assert.deepEqual(specifiers(text), [
    "./a.ts",
    "./b.ts",
    "./c.ts",
    "./d.ts",
    "./e.ts",
    "./f.cjs",
    "./g.d.ts",
    "./h.d.ts",
    "deno.ns",
    "./i.d.ts",
    "./j.d.ts",
    "./k.d.ts",
    "./l",
    "./l/jsx-runtime",
    "./l/jsx-dev-runtime",
    "./m",
    "./m/jsx-runtime",
    "./m/jsx-dev-runtime",
    "./n.json",
    "./o.txt",
    "./p.ts",
    "./q.ts",
  ]);
  assert.equal(findSpecifiers(`/// <reference lib="dom" />`)[0].kind, "lib");
});

Deno.test("findSpecifiers: comments and line breaks between the keyword and the string", () => {
  const text = `import /* a */ ( // b
    /* c */ "/x/1")
import {
  a,
  b,
} from
  // comment
  "/x/2";
require /**/ ( ( "/x/3" ) );`;
  assert.deepEqual(specifiers(text), ["/x/1", "/x/2", "/x/3"]);
  assert.deepEqual(findSpecifiers(text).map((found) => found.line), [1, 6, 9]);
});

Deno.test("findSpecifiers: a regex literal or string with a quote does not hide a later import", () => {
  const text = `const quote = /"/; const other = '"'; const tick = /\`/;
import "/etc/shadow";
// an unclosed comment or string: /* "
import("/etc/passwd");`;
  const found = specifiers(text);
  assert.ok(found.includes("/etc/shadow"), JSON.stringify(found));
  assert.ok(found.includes("/etc/passwd"), JSON.stringify(found));
});

Deno.test("findSpecifiers: imports inside comments and strings are found too", () => {
  assert.deepEqual(specifiers(`// import "/a"\nconst s = "export * from '/b'";`), ["/a", "/b"]);
});

Deno.test("findSpecifiers: escapes and substitutions are marked unreadable", () => {
  const [escaped] = findSpecifiers(`import "\\x2fetc/shadow";`);
  assert.match(escaped.unreadable ?? "", /backslash/);
  const [computed] = findSpecifiers("await import(`./${name}.ts`);");
  assert.match(computed.unreadable ?? "", /computed/);
});

Deno.test("moduleTexts: a UTF-16 file with a byte order mark is read as Deno reads it", () => {
  const body = `import "/etc/shadow";`;
  const bytes = new Uint8Array(2 + body.length * 2);
  bytes.set([0xff, 0xfe]);
  for (let i = 0; i < body.length; i++) bytes[2 + 2 * i] = body.charCodeAt(i);
  const found = moduleTexts(bytes).flatMap(specifiers);
  assert.ok(found.includes("/etc/shadow"));
});

/** A scratch layout: `outside/secret.ts` beside the pipeline directory `d/`. */
async function layout(files: Record<string, string>): Promise<{ root: string; dir: string }> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "pocketci-scan-" }));
  await Deno.mkdir(`${root}/d`);
  await Deno.mkdir(`${root}/outside`);
  await Deno.writeTextFile(`${root}/outside/secret.ts`, "export const s = 1;\n");
  for (const [path, content] of Object.entries(files)) {
    const full = `${root}/${path}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, content);
  }
  return { root, dir: `${root}/d` };
}

async function refusal(
  pipeline: string,
  options: Parameters<typeof scanImports>[1] = {},
): Promise<string> {
  const error = await scanImports(pipeline, options).then(
    () => undefined,
    (error) => error,
  );
  assert.ok(error instanceof ImportRefusedError, `expected a refusal, got ${error}`);
  assert.ok(!error.message.includes("\n"), error.message);
  return error.message;
}

Deno.test("scanImports: an absolute import outside the directory is refused, naming file, line and real path", async () => {
  const { root, dir } = await layout({ "d/p.ts": `// x\nimport "${"/etc/shadow"}";\n` });
  const message = await refusal(`${dir}/p.ts`);
  assert.match(message, new RegExp(`^${dir}/p.ts:2: import "/etc/shadow" refused`));
  assert.match(message, /real path \/etc\/shadow is outside the pipeline's directory/);
  assert.match(message, /a pipeline may import files in its directory/);
  await Deno.remove(root, { recursive: true });
});

Deno.test("scanImports: file: URLs, percent-encoding and a host are resolved before the check", async () => {
  const { root, dir } = await layout({
    "d/p.ts": `import "file:///etc/%73hadow";`,
    "d/q.ts": `import "file://evil/etc/shadow";`,
  });
  assert.match(await refusal(`${dir}/p.ts`), /real path \/etc\/shadow/);
  assert.match(await refusal(`${dir}/q.ts`), /with a host/);
  await Deno.remove(root, { recursive: true });
});

Deno.test("scanImports: symlinked file, symlinked directory and nested symlinks leaving the directory are refused", async () => {
  const { root, dir } = await layout({
    "d/file.ts": `import "./link.ts";`,
    "d/dir.ts": `import "./root/etc/shadow";`,
    "d/nested.ts": `import "./hop/secret.ts";`,
  });
  await Deno.symlink(`${root}/outside/secret.ts`, `${dir}/link.ts`);
  await Deno.symlink("/", `${dir}/root`);
  await Deno.symlink("./hop2", `${dir}/hop`);
  await Deno.symlink("../outside", `${dir}/hop2`);
  assert.match(await refusal(`${dir}/file.ts`), new RegExp(`real path ${root}/outside/secret.ts`));
  assert.match(await refusal(`${dir}/dir.ts`), /real path \/etc\/shadow/);
  assert.match(
    await refusal(`${dir}/nested.ts`),
    new RegExp(`real path ${root}/outside/secret.ts`),
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("scanImports: `..` after a symlinked directory is checked as resolved from the path as imported", async () => {
  // d/a -> d/sub/deep. From d/a/x.ts, "../../outside/secret.ts" is root/outside/secret.ts
  // (what Deno loads); from the real d/sub/deep/x.ts it would stay inside.
  const { root, dir } = await layout({
    "d/p.ts": `import "./a/x.ts";`,
    "d/sub/deep/x.ts": `import "../../outside/secret.ts";`,
    "d/sub/outside/secret.ts": "",
  });
  await Deno.symlink("sub/deep", `${dir}/a`);
  const message = await refusal(`${dir}/p.ts`);
  assert.match(message, new RegExp(`^${dir}/a/x.ts:1: .*real path ${root}/outside/secret.ts`));
  await Deno.remove(root, { recursive: true });
});

Deno.test("scanImports: a relative chain that leaves the directory at depth 3 is refused", async () => {
  const { root, dir } = await layout({
    "d/p.ts": `import "./l1/a.ts";`,
    "d/l1/a.ts": `export * from "./l2/b.ts";`,
    "d/l1/l2/b.ts": `await import("./l3/c.ts");`,
    "d/l1/l2/l3/c.ts": `import "../../../../outside/secret.ts";`,
  });
  const message = await refusal(`${dir}/p.ts`);
  assert.match(message, new RegExp(`^${dir}/l1/l2/l3/c.ts:1: `));
  await Deno.remove(root, { recursive: true });
});

Deno.test("scanImports: local modules, the DSL and node: built-ins are allowed; local files are listed", async () => {
  const { root, dir } = await layout({
    "d/p.ts": [
      `import { pipeline } from "pocketci";`,
      `import "jsr:@pocketci/pocketci";`,
      `import "${DSL_ENTRY}";`,
      `import "node:path";`,
      `import "./lib/util.ts";`,
      `import data from "./data.json" with { type: "json" };`,
      `const log = "copied from " + "x";`,
    ].join("\n"),
    "d/lib/util.ts": `export * from "../p.ts";`,
    "d/data.json": `{"from": "/etc/shadow"}`,
  });
  const scan = await scanImports(`${dir}/p.ts`);
  assert.deepEqual(scan.localFiles, [`${dir}/p.ts`, `${dir}/lib/util.ts`, `${dir}/data.json`]);
  assert.equal(scan.fetches, false);
  await Deno.remove(root, { recursive: true });
});

Deno.test("scanImports: an import from a directory granted with --allow-read is allowed", async () => {
  const { root, dir } = await layout({ "d/p.ts": `import "../outside/secret.ts";` });
  await refusal(`${dir}/p.ts`);
  await scanImports(`${dir}/p.ts`, { readRoots: [`${root}/outside`] });
  await Deno.remove(root, { recursive: true });
});

Deno.test("scanImports: escapes, computed specifiers and remote schemes are refused", async () => {
  const cases: Record<string, RegExp> = {
    [`import "\\x2fetc/shadow";`]: /backslash escape/,
    ["await import(`./${'x'}.ts`);"]: /computed/,
    [`import "https://example.com/x.ts";`]: /remote http\(s\) imports are not allowed/,
    [`import "http://example.com/x.ts";`]: /remote http\(s\) imports are not allowed/,
    [`import "data:text/javascript,export default 1";`]: /data: URL imports are not allowed/,
    [`import "blob:x";`]: /blob: URL imports/,
    [`import "ext:core/x.js";`]: /the ext: scheme is not supported/,
    [`/// <reference lib="../../etc/shadow" />`]: /not a TypeScript library name/,
  };
  for (const [source, expected] of Object.entries(cases)) {
    const { root, dir } = await layout({ "d/p.ts": source });
    assert.match(await refusal(`${dir}/p.ts`), expected, source);
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scanImports: a cached npm package is allowed, an uncached one refused unless --allow-import names it", async () => {
  const { root, dir } = await layout({
    "d/cached.ts": `import "npm:fakepkg@^1.2";\nimport "npm:@scope/pkg@~2.0.1/sub";`,
    "d/other_version.ts": `import "npm:fakepkg@^2";`,
    "d/uncached.ts": `import "npm:left-pad";`,
    "d/jsr.ts": `import "jsr:@std/path@1";`,
  });
  const denoDir = `${root}/deno_dir`;
  await Deno.mkdir(`${denoDir}/npm/registry.npmjs.org/fakepkg/1.4.0`, { recursive: true });
  await Deno.mkdir(`${denoDir}/npm/registry.npmjs.org/@scope/pkg/2.0.3`, { recursive: true });
  const env = { DENO_DIR: denoDir };
  assert.equal((await scanImports(`${dir}/cached.ts`, { env })).fetches, false);
  assert.match(
    await refusal(`${dir}/other_version.ts`, { env }),
    /not in Deno's cache .*--allow-import=npm:fakepkg$/,
  );
  assert.match(
    await refusal(`${dir}/uncached.ts`, { env }),
    /^.*uncached.ts:1: import "npm:left-pad" refused: the package is not in Deno's cache and pipelines cannot fetch packages; allow it with --allow-import=npm:left-pad$/,
  );
  const granted = await scanImports(`${dir}/uncached.ts`, { env, allowImports: ["npm:left-pad"] });
  assert.equal(granted.fetches, true);
  assert.match(await refusal(`${dir}/jsr.ts`, { env }), /--allow-import=jsr:@std\/path$/);
  await scanImports(`${dir}/jsr.ts`, { env, allowImports: ["jsr:@std/path"] });
  // Another registry keeps its own cache folder: the same package is not cached there.
  await refusal(`${dir}/cached.ts`, {
    env: { ...env, NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/" },
  });
  await Deno.remove(root, { recursive: true });
});

Deno.test("scanImports: a symlink loop ends", async () => {
  const { root, dir } = await layout({ "d/p.ts": `import "./loop/p.ts";` });
  await Deno.symlink(".", `${dir}/loop`);
  assert.match(await refusal(`${dir}/p.ts`), /more than 10000 modules|cannot resolve/);
  await Deno.remove(root, { recursive: true });
});
