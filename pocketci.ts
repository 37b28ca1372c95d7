/**
 * The PocketCI command-line entry point: `deno run -A pocketci.ts pipeline.ts`.
 *
 * @module
 */

import { main } from "./cli/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
