/**
 * What the benchmarks share: running a command and timing it, medians, and the command line of
 * `pocketci run`.
 *
 * @module
 */

/** The repository root (with a trailing slash). */
export const ROOT: string = new URL("../", import.meta.url).pathname;
/** The Deno running the benchmark. */
export const DENO: string = Deno.execPath();

/** A finished command: wall time and its decoded output. */
export interface Proc {
  /** Wall time in milliseconds. */
  ms: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
  /** Exit code. */
  code: number;
}

/** Runs a command to its end and times it. */
export async function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Proc> {
  const started = performance.now();
  const output = await new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - started;
  const decoder = new TextDecoder();
  return {
    ms,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    code: output.code,
  };
}

/** The median (the mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The arguments for `deno` that run `pocketci run` with `flags` on `pipeline`. */
export function pocketciRunArgs(pipeline: string, flags: readonly string[] = []): string[] {
  return [
    "run",
    "-A",
    "--unstable-worker-options",
    `${ROOT}pocketci.ts`,
    "run",
    ...flags,
    pipeline,
  ];
}
