/**
 * The immutable settings shared by task and sandbox builders, and their
 * conversion to the runner's request shape.
 *
 * @module
 */

import type { TaskRequest } from "./host.ts";
import { parseDurationMs, parseMemoryBytes } from "./parse.ts";
import { isSecretRef } from "./secret.ts";
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
  if (typeof name !== "string" || name.trim() === "") {
    throw new Error(`${kind}() needs a non-empty name, such as ${kind}("build")`);
  }
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
  for (const [key, value] of Object.entries(added)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new Error(`invalid environment variable name "${key}"`);
    }
    if (typeof value !== "string" && !isSecretRef(value)) {
      throw new Error(`environment variable ${key} must be a string or secret("NAME")`);
    }
  }
  return Object.freeze({ ...current, ...added });
}

/** Encodes standard input. */
export function encodeStdin(input: string | Uint8Array): Uint8Array {
  return typeof input === "string" ? new TextEncoder().encode(input) : input.slice();
}

/** Validates limits and converts memory to bytes. */
export function parseLimits(limits: Limits): { cpu?: number; memoryBytes?: number } {
  if (limits.cpu !== undefined && (!Number.isFinite(limits.cpu) || limits.cpu <= 0)) {
    throw new Error(`invalid cpu limit ${limits.cpu}: use a positive number of cores, such as 0.5`);
  }
  return {
    cpu: limits.cpu,
    memoryBytes: limits.memory === undefined ? undefined : parseMemoryBytes(limits.memory),
  };
}

/** Parses a timeout. */
export function parseTimeout(value: number | string): number {
  return parseDurationMs(value);
}

/** Checks a mount path. */
export function checkMountPath(path: string): string {
  if (typeof path !== "string" || path.trim() === "") {
    throw new Error('mount() needs a path, such as mount(src, "src")');
  }
  if (path.split("/").includes("..")) {
    throw new Error(`invalid mount path "${path}": ".." is not allowed`);
  }
  return path;
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
  };
}

/** Checks the arguments of a `run(cmd, ...args)` call. */
export function checkCommand(command: string, args: readonly string[]): string[] {
  const argv = [command, ...args];
  if (typeof command !== "string" || command === "") {
    throw new Error('run() needs a command, such as run("echo", "hello")');
  }
  for (const arg of argv) {
    if (typeof arg !== "string") throw new Error("run() arguments must be strings");
  }
  return argv;
}
