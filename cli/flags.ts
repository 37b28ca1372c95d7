/**
 * What the CLI commands share: walking `--flag value` / `--flag=value` arguments,
 * the flags whose values need the same checks (`--driver`, `--state-dir`, durations),
 * and writing a line to stdout or stderr.
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import type { ResolveOptions } from "../dsn/resolve.ts";
import type { ResolvedDsn } from "../dsn/types.ts";

/** One argument as a flag parser sees it. */
export interface FlagArgument {
  /** The argument as given. */
  readonly arg: string;
  /** `--name` of `--name=value`, else the whole argument. */
  readonly name: string;
  /**
   * The flag's value: what follows `=`, else the next argument (which is then
   * consumed). Throws a {@link UsageError} when there is none.
   */
  value(): string;
  /** The arguments after this one (for `--`). */
  rest(): string[];
}

/**
 * Calls `visit` for each argument in order; `visit` returns `"stop"` to end the walk
 * (after `--`).
 */
export function walkFlags(
  argv: readonly string[],
  visit: (flag: FlagArgument) => void | "stop",
): void {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const flag: FlagArgument = {
      arg,
      name,
      value: () => {
        if (eq > 0) return arg.slice(eq + 1);
        const next = argv[++i];
        if (next === undefined) throw new UsageError(`${name} needs a value`);
        return next;
      },
      rest: () => argv.slice(i + 1),
    };
    if (visit(flag) === "stop") return;
  }
}

/**
 * Resolves a `--driver` value; a bad DSN is a {@link UsageError} naming where it came
 * from (`source`: the flag, or `$POCKETCI_DRIVER`).
 */
export async function driverFlag(
  text: string,
  options: ResolveOptions,
  source = "--driver",
): Promise<ResolvedDsn> {
  const { resolveDsn } = await import("../dsn/mod.ts");
  const { DsnError } = await import("../dsn/types.ts");
  try {
    return resolveDsn(text, options);
  } catch (error) {
    if (error instanceof DsnError) throw new UsageError(`${source}: ${error.message}`);
    throw error;
  }
}

/** Parses the duration given to `flag`; a bad one is a {@link UsageError} naming it. */
export async function durationFlag(flag: string, text: string): Promise<number> {
  const { parseDurationMs } = await import("../dsl/parse.ts");
  try {
    return parseDurationMs(text);
  } catch (error) {
    throw new UsageError(`${flag}: ${(error as Error).message}`);
  }
}

/** `--state-dir`, else the default state directory; none is a {@link UsageError}. */
export async function stateDirFlag(
  given: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): Promise<string> {
  if (given !== undefined) return given;
  const { defaultStateDir } = await import("../runner/state.ts");
  try {
    return defaultStateDir(env);
  } catch (error) {
    throw new UsageError(`${(error as Error).message}, or pass --state-dir DIR`);
  }
}

const encoder = new TextEncoder();

/** Writes `text` and a newline to stdout. */
export function writeOut(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text + "\n"));
}

/** Writes `text` and a newline to stderr. */
export function writeErr(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text + "\n"));
}
