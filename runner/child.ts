/**
 * The entry point of the runner child process that `pocketci run` starts with only
 * the driver's permissions plus what the user granted. It reads its
 * {@link LaunchConfig} as one JSON line from standard input (so secrets never appear in the
 * process list) and exits with the run's exit code.
 *
 * The launcher keeps standard input open for as long as it lives: when it ends (the launcher
 * died, even of `kill -9`), the run is stopped as on SIGTERM, so no pipeline outlives it.
 *
 * @module
 */

import { launch, type LaunchConfig } from "./launch.ts";

/** The configuration line, and a promise that settles when standard input reaches its end. */
async function readConfig(): Promise<{ config?: LaunchConfig; closed: Promise<void> }> {
  const reader = Deno.stdin.readable.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    // The launcher stopped before sending a configuration (a failed type-check, Ctrl-C).
    if (done) return { closed: Promise.resolve() };
    text += decoder.decode(value, { stream: true });
  }
  const closed = (async () => {
    while (!(await reader.read()).done) {
      // Nothing more is sent; only the end matters.
    }
  })().catch(() => {});
  return { config: JSON.parse(text.slice(0, text.indexOf("\n"))) as LaunchConfig, closed };
}

if (import.meta.main) {
  const { config, closed } = await readConfig();
  if (config === undefined) Deno.exit(2);
  const outcome = await launch(config, undefined, { parentGone: closed });
  Deno.exit(outcome.exitCode);
}
