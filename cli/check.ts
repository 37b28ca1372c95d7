/**
 * `pocketci check PIPELINE.ts...`: type-checks pipeline files against the runner's
 * own copy of the DSL (the same import map `pocketci run` uses).
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import { fromFileUrl } from "../runner/file_url.ts";

/** The help text of `pocketci check`. */
export const CHECK_HELP = `Usage: pocketci check PIPELINE.ts...

Type-checks pipeline files (imports of "pocketci", "jsr:@pocketci/pocketci" and
relative imports of mod.ts all resolve to this copy of PocketCI).
Exit codes: 0 no type errors, 1 type errors, 2 bad usage or missing file.`;

/** The command that type-checks `files`. */
export function checkCommand(files: readonly string[]): { command: string; args: string[] } {
  const config = fromFileUrl(new URL("../deno.json", import.meta.url));
  return {
    command: Deno.execPath(),
    args: ["check", "--quiet", "--unstable-worker-options", `--config=${config}`, ...files],
  };
}

/** Runs `pocketci check`. */
export async function main(args: string[]): Promise<number> {
  if (args.includes("-h") || args.includes("--help")) {
    Deno.stdout.writeSync(new TextEncoder().encode(CHECK_HELP + "\n"));
    return 0;
  }
  const unknown = args.find((arg) => arg.startsWith("-"));
  if (unknown !== undefined) {
    throw new UsageError(`unknown flag ${unknown}; see \`pocketci check --help\``);
  }
  if (args.length === 0) {
    throw new UsageError("missing the pipeline file: pocketci check PIPELINE.ts");
  }
  const files: string[] = [];
  for (const file of args) {
    try {
      files.push(await Deno.realPath(file));
    } catch {
      throw new UsageError(`pipeline file ${file} does not exist`);
    }
  }
  const { command, args: checkArgs } = checkCommand(files);
  const status = await new Deno.Command(command, {
    args: checkArgs,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return status.code === 0 ? 0 : 1;
}
