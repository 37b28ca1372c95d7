/**
 * The agent's diagnostics: one line each on its stderr, prefixed `pocketci-agent:`
 * (journald or the console keeps them in a guest).
 *
 * @module
 */

/** Writes one diagnostic line. */
export type Logger = (line: string) => void;

const encoder = new TextEncoder();

/** A logger writing to stderr. */
export const stderrLogger: Logger = (line: string): void => {
  try {
    Deno.stderr.writeSync(encoder.encode(`pocketci-agent: ${line}\n`));
  } catch {
    // stderr closed: nothing to tell.
  }
};
