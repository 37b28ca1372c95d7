/**
 * `pipeline(name, fn)`: the default export of a pipeline file.
 *
 * @module
 */

import type { PipelineFunction } from "./types.ts";

const PIPELINE_BRAND = Symbol.for("pocketci.pipeline");

/** A named pipeline. */
export interface Pipeline {
  /** The pipeline's name. */
  readonly name: string;
  /** The body. */
  readonly run: PipelineFunction;
}

/** Declares a pipeline: `export default pipeline("build", async (ctx) => { ... })`. */
export function pipeline(name: string, fn: PipelineFunction): Pipeline {
  if (typeof fn !== "function") {
    throw new Error('pipeline() needs a name and a function: pipeline("build", async (ctx) => {})');
  }
  return Object.freeze({ name, run: fn, [PIPELINE_BRAND]: true });
}

/**
 * Finds the pipeline in a module's default export: a `pipeline(...)` value or a
 * plain function. Returns a one-line error message when there is none.
 */
export function pipelineFromModule(
  module: Record<string, unknown>,
  fallbackName: string,
): Pipeline | string {
  const value = module.default;
  if (typeof value === "function") {
    return { name: fallbackName, run: value as PipelineFunction };
  }
  if (typeof value === "object" && value !== null && PIPELINE_BRAND in value) {
    return value as unknown as Pipeline;
  }
  return 'the pipeline file has no default export; add `export default pipeline("name", async (ctx) => { ... })`';
}
