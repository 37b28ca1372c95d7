/**
 * How Deno resolves pipeline imports when PocketCI runs or checks a pipeline: the
 * import map (the bare `pocketci` import and the `jsr:@pocketci/pocketci` forms all
 * name this copy's `mod.ts`, nothing else) and a network closed to Deno.
 *
 * @module
 */

import config from "../deno.json" with { type: "json" };
import { toFileUrl } from "./file_url.ts";
import { fromFileUrl } from "./file_url.ts";

/** The absolute path of PocketCI's own `mod.ts` (the DSL entry point). */
export const DSL_ENTRY: string = fromFileUrl(new URL("../mod.ts", import.meta.url));

/** Every specifier that names the DSL (the keys of deno.json's imports that map to `./mod.ts`). */
export const DSL_SPECIFIERS: readonly string[] = Object.entries(
  config.imports as Record<string, string>,
).filter(([, target]) => target === "./mod.ts").map(([specifier]) => specifier);

/** The import map: each DSL specifier to the `file:` URL of {@link DSL_ENTRY}. */
export function dslImportMap(): { imports: Record<string, string> } {
  const target = toFileUrl(DSL_ENTRY);
  return { imports: Object.fromEntries(DSL_SPECIFIERS.map((specifier) => [specifier, target])) };
}

/** The import map as a `data:` URL, for `deno --import-map=...` (no file to clean up). */
export function dslImportMapUrl(): string {
  return `data:application/json,${encodeURIComponent(JSON.stringify(dslImportMap()))}`;
}

/**
 * Closes the network to a Deno subprocess through `env` (changed in place): every
 * HTTP(S) proxy variable points at a closed port and `NO_PROXY` is dropped, because
 * `--cached-only` alone still lets Deno fetch npm packages. `DENO_NO_PACKAGE_JSON`
 * keeps a `package.json` beside the pipeline from adding dependencies.
 */
export function closeDenoNetwork(env: Record<string, string>): Record<string, string> {
  for (const name of ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]) {
    env[name] = env[name.toLowerCase()] = "http://127.0.0.1:0";
  }
  delete env.NO_PROXY;
  delete env.no_proxy;
  env.DENO_NO_PACKAGE_JSON = "1";
  return env;
}
