/**
 * The pipeline author's API.
 *
 * @module
 */

export {
  type Pipeline,
  pipeline,
  type PipelineOptions,
  type PipelineResources,
  type ResourceHint,
} from "./pipeline.ts";
export { task, TaskBuilder } from "./task.ts";
export { Sandbox, sandbox, SandboxBuilder, SandboxCall } from "./sandbox.ts";
export { Service, service, ServiceBuilder } from "./service.ts";
export { cache, hashFiles, Volume, volume } from "./volume.ts";
export { secret } from "./secret.ts";
export { group } from "./group.ts";
export type { RetryCondition, RetryOptions, RetryPolicy } from "./retry.ts";
export { TaskError } from "./errors.ts";
export { Builder } from "./builder.ts";
export type { BuilderConfig } from "./config.ts";
export type {
  CacheHit,
  CacheKey,
  CacheOptions,
  EnvValue,
  ExportOptions,
  Limits,
  OutputCallback,
  PipelineContext,
  PipelineFunction,
  PullPolicy,
  ReadyOptions,
  ReadyProbe,
  SecretRef,
  TaskResult,
  TaskStatus,
  VolumeOptions,
} from "./types.ts";
