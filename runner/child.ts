/**
 * The entry point of the runner child process that `pocketci run` starts with only
 * the driver's permissions plus what the user granted. It reads its
 * {@link LaunchConfig} as JSON from standard input (so secrets never appear in the
 * process list) and exits with the run's exit code.
 *
 * @module
 */

import { launch, type LaunchConfig } from "./launch.ts";

async function readConfig(): Promise<LaunchConfig> {
  const text = await new Response(Deno.stdin.readable).text();
  return JSON.parse(text) as LaunchConfig;
}

if (import.meta.main) {
  const outcome = await launch(await readConfig());
  Deno.exit(outcome.exitCode);
}
