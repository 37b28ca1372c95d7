/**
 * PocketCI: CI pipelines written in TypeScript, run through pluggable drivers.
 *
 * ```ts
 * import { pipeline, task } from "pocketci";
 *
 * export default pipeline("hello", async () => {
 *   const result = await task("greet").image("busybox").run("echo", "hello");
 *   console.log(result.stdout);
 * });
 * ```
 *
 * @module
 */

export { VERSION } from "./version.ts";
export * from "./dsl/mod.ts";
