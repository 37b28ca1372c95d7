/**
 * The PocketCI version, kept equal to `version` in deno.json (a test checks it).
 *
 * @module
 */

/** The PocketCI version. */
export const VERSION = "0.1.0";
