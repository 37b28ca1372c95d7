/**
 * The runner's check of every request pipeline code sends. Pipeline code is untrusted and
 * can post messages without the DSL, so each request is checked again with the DSL's own
 * rules (`dsl/validate.ts`): every field the runner reads is checked and replaced by its
 * checked copy; an invalid one is refused with the error the DSL would have thrown.
 *
 * @module
 */

import type {
  ExecRequest,
  MountRequest,
  ServiceRequest,
  TaskRequest,
  VolumeRequest,
} from "../dsl/host.ts";
import {
  checkCacheOptions,
  checkCommand,
  checkCpu,
  checkEntrypoint,
  checkEnv,
  checkFlag,
  checkImage,
  checkMemory,
  checkMountPath,
  checkName,
  checkPath,
  checkPaths,
  checkPlatform,
  checkPorts,
  checkPull,
  checkReadyProbe,
  checkServiceName,
  checkStdin,
  checkTimeout,
  checkUser,
  checkVolumeName,
  checkWorkDir,
} from "../dsl/validate.ts";
import { checkRetryPolicy } from "../dsl/retry.ts";

type Fields = Record<string, unknown>;

function fields(value: unknown, what: string): Fields {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`invalid ${what} request: pipeline code must use the pocketci DSL`);
  }
  return value as Fields;
}

function optional<T>(value: unknown, check: (value: unknown) => T): T | undefined {
  return value === undefined ? undefined : check(value);
}

function argv(value: unknown): string[] {
  if (!Array.isArray(value)) throw new Error('run() needs a command, such as run("echo", "hello")');
  return checkCommand(value[0], value.slice(1));
}

/** An image's form is the session's check (a bad one is the task's error, see image_ref.ts). */
function imageText(value: unknown): string {
  if (typeof value !== "string") checkImage(value);
  return value as string;
}

function stdin(value: unknown): Uint8Array {
  // The DSL sends bytes; a string here did not come from it.
  if (!(value instanceof Uint8Array)) throw new Error("stdin() needs a string or a Uint8Array");
  return checkStdin(value);
}

function groupId(value: unknown): string {
  if (typeof value !== "string") {
    throw new Error("invalid group ID: pipeline code must use group()");
  }
  return value;
}

function mounts(value: unknown): MountRequest[] {
  if (!Array.isArray(value)) throw new Error("mount() needs a volume from volume() or cache()");
  return value.map((item) => {
    const mount = fields(item, "mount");
    if (typeof mount.volumeId !== "string") {
      throw new Error("mount() needs a volume from volume() or cache()");
    }
    return { volumeId: mount.volumeId, path: checkMountPath(mount.path) };
  });
}

/** A task request (`kind` "task") or a sandbox start request (`kind` "sandbox"), checked. */
export function checkTaskRequest(value: unknown, kind: "task" | "sandbox"): TaskRequest {
  const request = fields(value, kind);
  let command: string[];
  if (kind === "task") command = argv(request.command);
  else if (Array.isArray(request.command)) command = checkEntrypoint(request.command);
  else throw new Error("invalid sandbox request: pipeline code must use the pocketci DSL");
  return {
    ...request,
    name: checkName(kind, request.name),
    image: optional(request.image, imageText),
    command,
    env: { ...checkEnv(request.env ?? {}) },
    workDir: optional(request.workDir, checkWorkDir),
    mounts: mounts(request.mounts ?? []),
    stdin: optional(request.stdin, stdin),
    user: optional(request.user, checkUser),
    privileged: optional(request.privileged, (v) => checkFlag("privileged", v)),
    cpu: optional(request.cpu, checkCpu),
    memoryBytes: optional(request.memoryBytes, checkMemory),
    timeoutMs: optional(request.timeoutMs, checkTimeout),
    allowFailure: optional(request.allowFailure, (v) => checkFlag("allowFailure", v)),
    background: optional(request.background, (v) => checkFlag("background", v)),
    pull: optional(request.pull, checkPull),
    platform: optional(request.platform, checkPlatform),
    entrypoint: optional(request.entrypoint, checkEntrypoint),
    // A sandbox start is never retried; its calls carry their own policy.
    retry: kind === "task" ? optional(request.retry, checkRetryPolicy) : undefined,
    groupId: optional(request.groupId, groupId),
  };
}

/** A service start request, checked (only the fields a service has are kept). */
export function checkServiceRequest(value: unknown): ServiceRequest {
  const request = fields(value, "service");
  const name = checkServiceName(request.name);
  const ready = request.ready === undefined ? undefined : fields(request.ready, "service ready");
  return {
    name,
    image: optional(request.image, imageText),
    command: optional(request.command, argv),
    entrypoint: optional(request.entrypoint, checkEntrypoint),
    env: { ...checkEnv(request.env ?? {}) },
    workDir: optional(request.workDir, checkWorkDir),
    mounts: mounts(request.mounts ?? []),
    user: optional(request.user, checkUser),
    privileged: optional(request.privileged, (v) => checkFlag("privileged", v)),
    cpu: optional(request.cpu, checkCpu),
    memoryBytes: optional(request.memoryBytes, checkMemory),
    pull: optional(request.pull, checkPull),
    platform: optional(request.platform, checkPlatform),
    ports:
      request.ports === undefined || (Array.isArray(request.ports) && request.ports.length === 0)
        ? []
        : checkPorts(request.ports),
    ...(ready === undefined ? {} : {
      ready: {
        probe: checkReadyProbe(name, ready.probe),
        timeoutMs: checkTimeout(ready.timeoutMs),
        intervalMs: checkTimeout(ready.intervalMs),
      },
    }),
  };
}

/** A sandbox call request, checked. */
export function checkExecRequest(value: unknown): ExecRequest {
  const request = fields(value, "sandbox call");
  return {
    ...request,
    command: argv(request.command),
    env: { ...checkEnv(request.env ?? {}) },
    workDir: optional(request.workDir, checkWorkDir),
    stdin: optional(request.stdin, stdin),
    user: optional(request.user, checkUser),
    timeoutMs: optional(request.timeoutMs, checkTimeout),
    allowFailure: optional(request.allowFailure, (v) => checkFlag("allowFailure", v)),
    background: optional(request.background, (v) => checkFlag("background", v)),
    retry: optional(request.retry, checkRetryPolicy),
    groupId: optional(request.groupId, groupId),
  };
}

/** A volume or cache request, checked. */
export function checkVolumeRequest(value: unknown): VolumeRequest {
  const request = fields(value, "volume");
  if (request.kind !== "volume" && request.kind !== "cache") {
    throw new Error("invalid volume request: pipeline code must use volume() or cache()");
  }
  const kind = request.kind;
  const name = checkVolumeName(kind, request.name);
  if (kind === "volume" && (request.key !== undefined || request.restoreKeys !== undefined)) {
    throw new Error(`volume("${name}") takes no key; keys are for cache()`);
  }
  return {
    name,
    kind,
    from: optional(request.from, (v) => checkPath(kind, v)),
    exclude: optional(request.exclude, (v) => checkPaths(kind, v)),
    ...checkCacheOptions(name, request.key, request.restoreKeys),
  };
}

/** The runner's ID of a volume or sandbox, as pipeline code sends it back. */
export function checkId(kind: "volume" | "sandbox" | "service", id: unknown): string {
  if (typeof id !== "string") {
    throw new Error(`invalid ${kind} ID: use the ${kind} object the DSL returned`);
  }
  return id;
}

/**
 * Runs `work` with what `check` returns; a failed check is a rejection (with the DSL's
 * error), never a synchronous throw.
 */
export function withChecked<A, T>(check: () => A, work: (checked: A) => Promise<T>): Promise<T> {
  let checked: A;
  try {
    checked = check();
  } catch (error) {
    return Promise.reject(error);
  }
  return work(checked);
}
