/**
 * `pocketci init [DIR] [--force]`: writes a starter pipeline (`ci.ts`) and a `deno.json` whose
 * import map points the bare `"pocketci"` import at this PocketCI's DSL, so an editor running
 * the Deno language server resolves it. `pocketci run` and `check` do not need the file: they
 * always map `"pocketci"` to the runner's own copy.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { flagError } from "./dsn.ts";
import { UsageError } from "./errors.ts";
import { writeOut } from "./flags.ts";
import { VERSION } from "../version.ts";

/** The name of the starter pipeline `pocketci init` writes. */
export const PIPELINE_FILE = "ci.ts";

/** The help text of `pocketci init`. */
export const INIT_HELP: string = [
  "Usage: pocketci init [DIR] [--force]",
  "",
  `Writes a starter pipeline, DIR/${PIPELINE_FILE}, and DIR/deno.json, an import map that`,
  'points "pocketci" at this PocketCI so an editor resolves the import (pocketci run and',
  "check do not need it). DIR defaults to the current directory and is created if missing.",
  "Existing files are never overwritten unless --force is given.",
  "",
  "Flags:",
  "  --force     overwrite existing ci.ts and deno.json",
  "  -h, --help  show this help",
].join("\n");

/** The starter pipeline `pocketci init` writes. */
export const STARTER_PIPELINE =
  `// A PocketCI pipeline. Run it with \`pocketci run ${PIPELINE_FILE}\` (on this host), or
// \`pocketci run ${PIPELINE_FILE} --driver=docker\` (each task in a container).
import { pipeline, task } from "pocketci";

export default pipeline("ci", async (ctx) => {
  const hello = await task("hello").image("busybox").run("echo", "hello from", ctx.driver);
  console.log(hello.stdout.trim());

  await Promise.all([
    task("lint").image("busybox").sh("echo linting"),
    task("test").image("busybox").sh("echo testing"),
  ]);
});
`;

/**
 * Where an editor finds this PocketCI's DSL: the file URL of its `mod.ts` when that file is on
 * disk (a checkout or an installed copy), the module's own URL when it was loaded from the
 * network, else the published package.
 */
export async function dslSpecifier(
  base: string = import.meta.url,
): Promise<string> {
  const mod = new URL("../mod.ts", base);
  if (mod.protocol !== "file:") return mod.href;
  try {
    if ((await Deno.stat(mod)).isFile) return mod.href;
  } catch {
    // a compiled binary: its modules are not files an editor can open
  }
  return `jsr:@pocketci/pocketci@^${VERSION}`;
}

/** The `deno.json` `pocketci init` writes. */
export function editorConfig(specifier: string): string {
  return JSON.stringify({ imports: { pocketci: specifier } }, null, 2) + "\n";
}

/** Runs `pocketci init`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { force: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(flagError(error));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    writeOut(INIT_HELP);
    return 0;
  }
  if (positionals.length > 1) {
    throw new UsageError(`expected at most one directory, got ${positionals.length}`);
  }
  const dir = positionals[0] ?? ".";
  if (dir === "") throw new UsageError("the directory is empty: give a path, or none for .");
  await ensureDirectory(dir);
  const inDir = (name: string) => dir.endsWith("/") ? dir + name : `${dir}/${name}`;
  const files = [
    { path: inDir(PIPELINE_FILE), text: STARTER_PIPELINE },
    { path: inDir("deno.json"), text: editorConfig(await dslSpecifier()) },
  ];
  const existing = [];
  for (const file of files) {
    if (await exists(file.path)) existing.push(file.path);
  }
  if (existing.length > 0 && !values.force) {
    throw new UsageError(
      `${existing.join(" and ")} already exist${existing.length === 1 ? "s" : ""}; ` +
        `pass --force to overwrite ${existing.length === 1 ? "it" : "them"}`,
    );
  }
  for (const file of files) {
    // Removed first so that --force replaces a symlink instead of writing through it.
    if (existing.includes(file.path)) await Deno.remove(file.path);
    await Deno.writeTextFile(file.path, file.text, { createNew: true }).catch((error) => {
      throw new UsageError(`cannot write ${file.path}: ${(error as Error).message}`);
    });
  }
  writeOut(
    `wrote ${files[0].path} and ${files[1].path} (the editor's import map for "pocketci"); ` +
      `run it with: pocketci run ${files[0].path}`,
  );
  return 0;
}

async function ensureDirectory(dir: string): Promise<void> {
  try {
    if (!(await Deno.stat(dir)).isDirectory) {
      throw new UsageError(`${dir} is not a directory; give a directory for the pipeline`);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    await Deno.mkdir(dir, { recursive: true }).catch((error) => {
      throw new UsageError(`cannot create ${dir}: ${(error as Error).message}`);
    });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw new UsageError(`cannot look at ${path}: ${(error as Error).message}`);
  }
}
