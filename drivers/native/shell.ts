/**
 * Runs a fixed `/bin/sh` script with arguments passed as positional parameters (never
 * interpolated into the script), with a minimal environment, and collects its output.
 * The native driver uses it for cgroup files, which Deno opens only with --allow-all.
 *
 * @module
 */

/** What a script printed and how it exited. */
export interface ShellResult {
  /** Exit code. */
  readonly code: number;
  /** Standard output, decoded as UTF-8. */
  readonly stdout: string;
  /** Standard error, decoded as UTF-8. */
  readonly stderr: string;
}

/** The shell the native driver's helper scripts and cgroup wrapper run under. */
export const SHELL = "/bin/sh";

const ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" };
const decoder = new TextDecoder();

function command(script: string, args: readonly string[]): Deno.Command {
  return new Deno.Command(SHELL, {
    args: ["-c", script, "pocketci", ...args],
    clearEnv: true,
    env: ENV,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

function toResult(output: Deno.CommandOutput): ShellResult {
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Runs `script` with `args` as $1, $2, ... and resolves with its output. */
export async function runShell(script: string, args: readonly string[]): Promise<ShellResult> {
  return toResult(await command(script, args).output());
}

/** {@link runShell} for synchronous callers. */
export function runShellSync(script: string, args: readonly string[]): ShellResult {
  return toResult(command(script, args).outputSync());
}
