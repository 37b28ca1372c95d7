/**
 * PocketCI: CI pipelines written in TypeScript, run through pluggable drivers.
 *
 * @module
 */

export { VERSION } from "./version.ts";
export type { DriverName } from "./dsn/types.ts";
