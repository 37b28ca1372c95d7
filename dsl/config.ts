/**
 * The immutable settings shared by task and sandbox builders, and their
 * conversion to the runner's request shape.
 *
 * @module
 */

import { currentGroupId } from "./group.ts";
import type { TaskRequest } from "./host.ts";
import type { RetryPolicy } from "./retry.ts";
import {
  checkCpu,
  checkEnv,
  checkMemory,
  checkName,
  checkStdin,
  checkTimeout,
} from "./validate.ts";

export { checkCommand, checkMountPath } from "./validate.ts";
import type { EnvValue, Limits, OutputCallback, PullPolicy } from "./types.ts";
import type { Volume } from "./volume.ts";

/** Settings collected by a builder. */
export interface BuilderConfig {
  /** The name. */
  readonly name: string;
  /** Container image. */
  readonly image?: string;
  /** Environment. */
  readonly env: Readonly<Record<string, EnvValue>>;
  /** Working directory. */
  readonly workDir?: string;
  /** Mounted volumes. */
  readonly mounts: readonly { readonly volume: Volume; readonly path: string }[];
  /** Standard input. */
  readonly stdin?: Uint8Array;
  /** User. */
  readonly user?: string;
  /** Privileged mode. */
  readonly privileged?: boolean;
  /** CPU in cores. */
  readonly cpu?: number;
  /** Memory in bytes. */
  readonly memoryBytes?: number;
  /** Timeout in milliseconds. */
  readonly timeoutMs?: number;
  /** Output callback. */
  readonly onOutput?: OutputCallback;
  /** Accept failure and timeout. */
  readonly allowFailure: boolean;
  /** May outlive the pipeline function (cancelled then, without failing the run). */
  readonly background?: boolean;
  /** Image pull policy. */
  readonly pull?: PullPolicy;
  /** Image platform. */
  readonly platform?: string;
  /** Explicit entrypoint. */
  readonly entrypoint?: readonly string[];
  /** Retry policy (tasks; on a sandbox builder, the default of its calls). */
  readonly retry?: RetryPolicy;
}

/**
 * What `sh(script)` runs before the script: stop at the first failing command (`-e`) and
 * at an unset variable (`-u`), and let a failing pipe stage fail the pipe where the shell
 * has `pipefail` (busybox, bash; not dash). One line, so the script's line numbers in the
 * shell's errors stay right.
 */
export const SH_PRELUDE = "set -eu; (set -o pipefail) 2>/dev/null && set -o pipefail; ";

/** The argv of `sh(script)`: `sh -c` with {@link SH_PRELUDE} before the script. */
export function shellCommand(script: string): string[] {
  if (typeof script !== "string") throw new Error('sh() needs a script, such as sh("make test")');
  return ["sh", "-c", SH_PRELUDE + script];
}

/** A fresh configuration for `name`. */
export function initialConfig(kind: string, name: string): BuilderConfig {
  checkName(kind, name);
  return Object.freeze({
    name,
    env: Object.freeze({}),
    mounts: Object.freeze([]),
    allowFailure: false,
  });
}

/** Returns a copy of `config` with `changes` applied (the original stays untouched). */
export function withChanges(config: BuilderConfig, changes: Partial<BuilderConfig>): BuilderConfig {
  return Object.freeze({ ...config, ...changes });
}

/** Validates and merges environment variables. */
export function mergeEnv(
  current: Readonly<Record<string, EnvValue>>,
  added: Readonly<Record<string, EnvValue>>,
): Readonly<Record<string, EnvValue>> {
  return Object.freeze({ ...current, ...checkEnv(added) });
}

/** Encodes standard input. */
export function encodeStdin(input: string | Uint8Array): Uint8Array {
  return checkStdin(input);
}

/** Validates limits and converts memory to bytes. */
export function parseLimits(limits: Limits): { cpu?: number; memoryBytes?: number } {
  return {
    cpu: limits.cpu === undefined ? undefined : checkCpu(limits.cpu),
    memoryBytes: limits.memory === undefined ? undefined : checkMemory(limits.memory),
  };
}

/** Parses a timeout. */
export function parseTimeout(value: number | string): number {
  return checkTimeout(value);
}

/** The request the runner receives for this configuration and command. */
export function toRequest(config: BuilderConfig, command: readonly string[]): TaskRequest {
  return {
    name: config.name,
    image: config.image,
    command: [...command],
    env: { ...config.env },
    workDir: config.workDir,
    mounts: config.mounts.map((mount) => ({ volumeId: mount.volume.id, path: mount.path })),
    stdin: config.stdin,
    user: config.user,
    privileged: config.privileged,
    cpu: config.cpu,
    memoryBytes: config.memoryBytes,
    timeoutMs: config.timeoutMs,
    allowFailure: config.allowFailure,
    ...(config.background ? { background: true } : {}),
    pull: config.pull,
    platform: config.platform,
    entrypoint: config.entrypoint ? [...config.entrypoint] : undefined,
    ...(config.retry === undefined ? {} : { retry: config.retry }),
    ...groupField(),
  };
}

/** `{ groupId }` of the `group()` the caller runs in, or nothing outside groups. */
export function groupField(): { groupId?: string } {
  const groupId = currentGroupId();
  return groupId === undefined ? {} : { groupId };
}
