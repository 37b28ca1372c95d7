/**
 * `pipeline(name, fn)`: the default export of a pipeline file.
 *
 * @module
 */

import { parseMemoryBytes } from "./parse.ts";
import type { PipelineFunction } from "./types.ts";

const PIPELINE_BRAND = Symbol.for("pocketci.pipeline");

/** The CPU and memory the pipeline's biggest task needs: drivers that size machines use it. */
export interface PipelineResources {
  /** Cores, such as `4` or `0.5`. */
  readonly cpu?: number;
  /** Bytes, or a quantity such as `"8Gi"` or `"512MB"`. */
  readonly memory?: number | string;
}

/** Options of {@link pipeline}. */
export interface PipelineOptions {
  /**
   * Sizes a machine up front (`size=auto` / `server_type=auto` on the cloud drivers) instead of
   * from the first task's limits, for pipelines whose big tasks come later.
   */
  readonly resources?: PipelineResources;
}

/** The resources hint in numbers. */
export interface ResourceHint {
  /** Cores (0: none asked). */
  readonly cpu: number;
  /** Bytes (0: none asked). */
  readonly memoryBytes: number;
}

/** A named pipeline. */
export interface Pipeline {
  /** The pipeline's name. */
  readonly name: string;
  /** The body. */
  readonly run: PipelineFunction;
  /** The resources hint, when the pipeline gave one. */
  readonly resources?: ResourceHint;
}

/** The most a hint may ask for: past any machine size a provider sells. */
export const MAX_HINT_CPU = 1024;
/** The most memory a hint may ask for (64 TiB). */
export const MAX_HINT_MEMORY_BYTES: number = 64 * 1024 ** 4;

function resourceHint(resources: PipelineResources): ResourceHint {
  if (typeof resources !== "object" || resources === null) {
    throw new Error(
      'pipeline() resources must be an object such as { cpu: 4, memory: "8Gi" }',
    );
  }
  const unknown = Object.keys(resources).filter((key) => key !== "cpu" && key !== "memory");
  if (unknown.length > 0) {
    throw new Error(
      `pipeline() resources has unknown field ${
        unknown[0]
      }: use cpu and memory, such as { cpu: 4, memory: "8Gi" }`,
    );
  }
  const { cpu = 0, memory } = resources;
  if (typeof cpu !== "number" || !Number.isFinite(cpu) || cpu < 0 || cpu > MAX_HINT_CPU) {
    throw new Error(
      `invalid pipeline() resources cpu ${cpu}: use a number of cores from 0 to ${MAX_HINT_CPU}`,
    );
  }
  const memoryBytes = memory === undefined ? 0 : parseMemoryBytes(memory);
  if (memoryBytes > MAX_HINT_MEMORY_BYTES) {
    throw new Error(`invalid pipeline() resources memory ${memory}: at most 64Ti`);
  }
  return { cpu, memoryBytes };
}

/**
 * Declares a pipeline: `export default pipeline("build", async (ctx) => { ... })`, or with
 * options: `pipeline("build", { resources: { cpu: 4, memory: "8Gi" } }, async (ctx) => { ... })`.
 */
export function pipeline(name: string, fn: PipelineFunction): Pipeline;
/** Declares a pipeline with options (a resources hint that sizes machines up front). */
export function pipeline(name: string, options: PipelineOptions, fn: PipelineFunction): Pipeline;
export function pipeline(
  name: string,
  optionsOrFn: PipelineOptions | PipelineFunction,
  maybeFn?: PipelineFunction,
): Pipeline {
  const fn = typeof optionsOrFn === "function" ? optionsOrFn : maybeFn;
  const options = typeof optionsOrFn === "function" ? {} : optionsOrFn;
  if (typeof fn !== "function" || typeof options !== "object" || options === null) {
    throw new Error(
      'pipeline() needs a name and a function: pipeline("build", async (ctx) => {}), or pipeline("build", { resources }, async (ctx) => {})',
    );
  }
  const unknown = Object.keys(options).filter((key) => key !== "resources");
  if (unknown.length > 0) {
    throw new Error(`pipeline() has no option ${unknown[0]}: the options are { resources }`);
  }
  const resources = options.resources === undefined ? undefined : resourceHint(options.resources);
  return Object.freeze({
    name,
    run: fn,
    ...(resources ? { resources: Object.freeze(resources) } : {}),
    [PIPELINE_BRAND]: true,
  });
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
