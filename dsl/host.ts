/**
 * The seam between the DSL and the runner. Pipeline code calls the DSL; the DSL
 * calls the installed {@link PipelineHost}: inside a run that is a message-passing
 * client talking to the runner on the main thread, in unit tests a fake.
 *
 * Everything crossing this seam is structured-cloneable (plain data), so the same
 * types describe the worker messages.
 *
 * @module
 */

import type { RetryPolicy } from "./retry.ts";
import type {
  CacheHit,
  EnvValue,
  OutputCallback,
  PullPolicy,
  ReadyProbe,
  TaskResult,
} from "./types.ts";

/** A volume mounted into a task, by the runner's volume ID. */
export interface MountRequest {
  /** The runner's ID of the volume. */
  readonly volumeId: string;
  /** Where it appears: relative to the default working directory (not to `workDir`), or absolute. */
  readonly path: string;
}

/** Everything the runner needs to run a task or start a sandbox. */
export interface TaskRequest {
  /** The task's name. */
  readonly name: string;
  /** Container image. */
  readonly image?: string;
  /** argv; index 0 is the executable (empty for a sandbox start). */
  readonly command: readonly string[];
  /** The task's own environment (secrets by reference). */
  readonly env: Readonly<Record<string, EnvValue>>;
  /** Working directory. */
  readonly workDir?: string;
  /** Volumes to mount. */
  readonly mounts: readonly MountRequest[];
  /** Standard input. */
  readonly stdin?: Uint8Array;
  /** User to run as. */
  readonly user?: string;
  /** Run privileged. */
  readonly privileged?: boolean;
  /** CPU in cores. */
  readonly cpu?: number;
  /** Memory limit in bytes. */
  readonly memoryBytes?: number;
  /** Timeout in milliseconds, counted from the start of the task. */
  readonly timeoutMs?: number;
  /** Whether a failure or timeout is accepted (shown as such in the summary). */
  readonly allowFailure?: boolean;
  /** Whether it may outlive the pipeline function (cancelled then, without failing the run). */
  readonly background?: boolean;
  /** Image pull policy. */
  readonly pull?: PullPolicy;
  /** Image platform such as `linux/amd64`. */
  readonly platform?: string;
  /** Explicit entrypoint. */
  readonly entrypoint?: readonly string[];
  /** Tasks: re-run an unsuccessful attempt under this policy (a sandbox start is never retried). */
  readonly retry?: RetryPolicy;
  /** The runner's ID of the `group()` the task was started in. */
  readonly groupId?: string;
}

/** One call in a started sandbox. */
export interface ExecRequest {
  /** argv; index 0 is the executable. */
  readonly command: readonly string[];
  /** Extra environment for this call. */
  readonly env?: Readonly<Record<string, EnvValue>>;
  /** Working directory for this call. */
  readonly workDir?: string;
  /** Standard input for this call. */
  readonly stdin?: Uint8Array;
  /** User for this call. */
  readonly user?: string;
  /** Timeout for this call in milliseconds. */
  readonly timeoutMs?: number;
  /** Whether a failure or timeout is accepted. */
  readonly allowFailure?: boolean;
  /** Whether it may outlive the pipeline function (cancelled then, without failing the run). */
  readonly background?: boolean;
  /** Re-run an unsuccessful attempt under this policy. */
  readonly retry?: RetryPolicy;
  /** The runner's ID of the `group()` the call was made in. */
  readonly groupId?: string;
}

/** A request to open a log group. */
export interface GroupRequest {
  /** The group's name. */
  readonly name: string;
  /** The runner's ID of the enclosing group, if any. */
  readonly parentId?: string;
}

/** An opened log group. */
export interface GroupInfo {
  /** The runner's ID for it. */
  readonly id: string;
}

/** How a group's function ended: it returned, or it threw. */
export type GroupOutcome = "success" | "failure";

/** A volume the runner created. */
export interface VolumeInfo {
  /** The runner's ID for it. */
  readonly id: string;
  /** The logical name. */
  readonly name: string;
  /** Run-scoped volume or namespace-scoped cache. */
  readonly kind: "volume" | "cache";
  /** Caches: the key (absent: the unkeyed cache). */
  readonly key?: string;
  /** Caches: whether the exact key existed, another key was restored, or neither. */
  readonly hit?: CacheHit;
  /** Caches: the key whose contents were copied in, when `hit` is `restored`. */
  readonly restoredKey?: string;
}

/** A request to create a volume or open a cache. */
export interface VolumeRequest {
  /** The logical name. */
  readonly name: string;
  /** Run-scoped volume or namespace-scoped cache. */
  readonly kind: "volume" | "cache";
  /** Host directory to seed it from. */
  readonly from?: string;
  /** Patterns excluded from the seed copy. */
  readonly exclude?: readonly string[];
  /** Caches: the joined key. */
  readonly key?: string;
  /** Caches: joined key prefixes to restore from on a miss, in order. */
  readonly restoreKeys?: readonly string[];
}

/** A started sandbox. */
export interface SandboxInfo {
  /** The runner's ID for it. */
  readonly id: string;
  /** The sandbox's name. */
  readonly name: string;
}

/** Everything the runner needs to start a service. */
export interface ServiceRequest {
  /** The service's name: a DNS label, the name tasks reach it by. */
  readonly name: string;
  /** Container image. */
  readonly image?: string;
  /** Replaces the image's CMD (`.run(...)`); absent: the image's CMD. */
  readonly command?: readonly string[];
  /** Replaces the image's ENTRYPOINT; absent: the image's own. */
  readonly entrypoint?: readonly string[];
  /** Environment (secrets by reference). */
  readonly env: Readonly<Record<string, EnvValue>>;
  /** Working directory. */
  readonly workDir?: string;
  /** Volumes to mount. */
  readonly mounts: readonly MountRequest[];
  /** User to run as. */
  readonly user?: string;
  /** Run privileged (needs the operator's grant). */
  readonly privileged?: boolean;
  /** CPU in cores. */
  readonly cpu?: number;
  /** Memory limit in bytes. */
  readonly memoryBytes?: number;
  /** Image pull policy. */
  readonly pull?: PullPolicy;
  /** Image platform. */
  readonly platform?: string;
  /** TCP ports published on the host's 127.0.0.1. */
  readonly ports: readonly number[];
  /** The readiness check, if any. */
  readonly ready?: {
    readonly probe: ReadyProbe;
    readonly timeoutMs: number;
    readonly intervalMs: number;
  };
}

/** A started (and ready) service. */
export interface ServiceInfo {
  /** The runner's ID for it. */
  readonly id: string;
  /** The service's name. */
  readonly name: string;
  /** The host port (on 127.0.0.1) of each published port, by port. */
  readonly hostPorts: Readonly<Record<string, number>>;
}

/** What the DSL needs from the runner. */
export interface PipelineHost {
  /** Runs a task to completion (the result carries the status; the DSL decides whether to reject). */
  runTask(request: TaskRequest, onOutput?: OutputCallback): Promise<TaskResult>;
  /** Creates a volume or opens a cache, seeding it when asked. */
  createVolume(request: VolumeRequest): Promise<VolumeInfo>;
  /** Reads regular files (text) from a volume; directories are read recursively. */
  readFiles(volumeId: string, paths: readonly string[]): Promise<Record<string, string>>;
  /** Reads one file's bytes from a volume. */
  readFile(volumeId: string, path: string): Promise<Uint8Array>;
  /** Writes files into a volume. */
  writeFiles(volumeId: string, files: Readonly<Record<string, string | Uint8Array>>): Promise<void>;
  /** Copies a volume's contents (or those of `path` inside it) to a host directory. */
  exportTo(volumeId: string, hostDir: string, path?: string): Promise<void>;
  /** Starts a sandbox. */
  startSandbox(request: TaskRequest): Promise<SandboxInfo>;
  /** Runs one call in a sandbox. */
  execSandbox(
    sandboxId: string,
    request: ExecRequest,
    onOutput?: OutputCallback,
  ): Promise<TaskResult>;
  /** Ends a sandbox. Safe to call more than once. */
  closeSandbox(sandboxId: string): Promise<void>;
  /** Starts a service; resolves once its readiness check passed. */
  startService(request: ServiceRequest): Promise<ServiceInfo>;
  /** Stops a service. Safe to call more than once. */
  stopService(serviceId: string): Promise<void>;
  /** The kept tail of a service's output (secrets masked). */
  serviceLogs(serviceId: string): Promise<string>;
  /** SHA-256 (hex) over the files of the pipeline's directory matching the globs. */
  hashFiles(patterns: readonly string[]): Promise<string>;
  /** Opens a log group (`group(name, fn)`). */
  startGroup(request: GroupRequest): Promise<GroupInfo>;
  /** Closes a log group with how its function ended. Safe to call more than once. */
  endGroup(groupId: string, outcome: GroupOutcome): Promise<void>;
}

const HOST_KEY = Symbol.for("pocketci.host");

/** Installs the host the DSL talks to (the runner does this before loading a pipeline). */
export function installHost(host: PipelineHost | undefined): void {
  (globalThis as Record<symbol, unknown>)[HOST_KEY] = host;
}

/** The installed host; throws a one-line error outside a run. */
export function currentHost(): PipelineHost {
  const host = (globalThis as Record<symbol, unknown>)[HOST_KEY] as PipelineHost | undefined;
  if (host === undefined) {
    throw new Error(
      "pocketci: no runner is active; run this pipeline with `pocketci run FILE.ts`",
    );
  }
  return host;
}
