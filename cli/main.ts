/**
 * Dispatches `pocketci COMMAND ...` to one module per subcommand, loaded lazily so
 * a command never pays for the others' imports.
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import { VERSION } from "../version.ts";
import { writeErr, writeOut } from "./flags.ts";

/** A subcommand module: `main(args)` returns the process exit code. */
export interface CommandModule {
  /** Runs the command with the arguments after its name. */
  main(args: string[]): Promise<number>;
}

interface CommandEntry {
  readonly summary: string;
  readonly load: () => Promise<CommandModule>;
}

const COMMANDS: Record<string, CommandEntry> = {
  run: { summary: "run a pipeline file", load: () => import("./run.ts") },
  check: { summary: "type-check a pipeline file", load: () => import("./check.ts") },
  dsn: { summary: "explain a driver string", load: () => import("./dsn.ts") },
  drivers: { summary: "list drivers and their parameters", load: () => import("./drivers.ts") },
  permissions: {
    summary: "print the Deno permissions a driver needs",
    load: () => import("./permissions.ts"),
  },
  gc: { summary: "remove what dead runs left behind", load: () => import("./gc.ts") },
  init: {
    summary: "write a starter pipeline (ci.ts) and an editor import map (deno.json)",
    load: () => import("./init.ts"),
  },
};

/** The top-level help text. */
export function helpText(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, entry]) =>
    `  ${name.padEnd(width)}  ${entry.summary}`
  );
  return [
    `pocketci ${VERSION}: run CI pipelines written in TypeScript`,
    "",
    "Usage:",
    "  pocketci PIPELINE.ts [flags]       same as `pocketci run PIPELINE.ts`",
    "  pocketci COMMAND [flags]",
    "",
    "Commands:",
    ...lines,
    "",
    "Flags:",
    "  -h, --help     show help (also `pocketci COMMAND --help`)",
    "  -V, --version  print the version",
  ].join("\n");
}

/** The one-line error for an unknown command, with the closest command when one is close. */
async function unknownCommandText(name: string): Promise<string> {
  const { closest } = await import("../dsn/suggest.ts");
  const known = Object.keys(COMMANDS);
  const guess = closest(name, known);
  const shown = name.length <= 24 ? `"${name}"` : `(a ${name.length}-character word)`;
  return `pocketci: unknown command ${shown}${guess ? ` (did you mean "${guess}"?)` : ""}; ` +
    `known commands: ${known.join(", ")} (or pass a pipeline file ending in .ts)`;
}

/** Runs the CLI with `args` and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    writeOut(helpText());
    return first === undefined ? 2 : 0;
  }
  if (first === "-V" || first === "--version") {
    writeOut(`pocketci ${VERSION}`);
    return 0;
  }
  let name = first;
  let commandArgs = rest;
  if (!(first in COMMANDS)) {
    if (/\.(ts|mts|js|mjs)$/.test(first)) {
      name = "run";
      commandArgs = args;
    } else {
      writeErr(await unknownCommandText(first));
      return 2;
    }
  }
  try {
    const module = await COMMANDS[name].load();
    return await module.main(commandArgs);
  } catch (error) {
    if (error instanceof UsageError) {
      writeErr(`pocketci ${name}: ${error.message}`);
      return 2;
    }
    throw error;
  }
}
