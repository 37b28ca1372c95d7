/**
 * The driver contract: what every execution backend (native, docker, k8s, cloud
 * machines, Fly Machines, QEMU and Apple VMs) implements so the runner can drive
 * it without knowing which one it is.
 *
 * Design notes:
 * - A driver instance belongs to exactly one run (`DriverContext.runId`) inside one
 *   namespace. `close()` removes everything that run created except caches.
 * - Starting is non-blocking: `startTask` resolves once the work has started and
 *   output flows to the sink as it is produced (or at exit, for drivers without
 *   live streaming). `wait()` resolves with the exit status.
 * - Exit codes follow the shell convention: a process killed by signal N reports
 *   `code = 128 + N` and `signal = N`, never 0.
 * - "Could not run" (image missing, command not found, backend failure) is a
 *   rejected promise carrying a {@link DriverError}; a non-zero exit is not an error.
 *
 * @module
 */

import type { DriverName } from "../dsn/types.ts";

export type { DriverName };

/** What a driver can honour. Using an unclaimed capability is a clear {@link UnsupportedError}. */
export interface DriverCapabilities {
  /** Output reaches the sink while the task runs (not only at exit). */
  readonly liveStreaming: boolean;
  /** stdout and stderr arrive as separate streams. */
  readonly separateStderr: boolean;
  /** A task or exec can be fed standard input. */
  readonly stdin: boolean;
  /** Long-lived sandboxes with exec. */
  readonly sandboxes: boolean;
  /** Tasks can run as another user. */
  readonly user: boolean;
  /** Tasks can run privileged. */
  readonly privileged: boolean;
  /** CPU and memory limits are enforced. */
  readonly limits: boolean;
  /** Caches survive across runs of the same namespace. */
  readonly caches: boolean;
  /** The task's `image` is honoured (false: commands run on the host or VM OS). */
  readonly images: boolean;
}

/** The names of the capabilities, for messages and for iterating in the conformance suite. */
export type CapabilityName = keyof DriverCapabilities;

/** A request to create a run-scoped volume or a namespace-scoped cache. */
export interface VolumeSpec {
  /** The logical name the pipeline gave (`volume("src")`, `cache("npm")`). */
  readonly name: string;
  /** `volume` lives for the run; `cache` survives runs of the same namespace. */
  readonly kind: "volume" | "cache";
  /**
   * Caches only: the content version (printable ASCII, checked by the runner). The cache
   * used is `name` plus `key`, distinct from the unkeyed cache `name` and from other keys.
   */
  readonly key?: string;
  /**
   * Caches only: when the cache (`name` + `key`) does not exist yet, it starts as a copy of
   * this cache of the same namespace (one {@link Driver.listCaches} returned), which is left
   * unchanged. Ignored when the cache exists.
   */
  readonly seed?: VolumeHandle;
}

/** How {@link Driver.createVolume} found a cache: already there, created from a seed, or new. */
export type CacheOpening = "existing" | "seeded" | "created";

/** A volume or cache the driver created. */
export interface VolumeHandle {
  /** The logical name the pipeline gave. */
  readonly name: string;
  /** Whether this is a run-scoped volume or a namespace-scoped cache. */
  readonly kind: "volume" | "cache";
  /** The driver's own identifier (a host path, a Docker volume name, ...). */
  readonly id: string;
  /** Caches: the key it was opened with (absent: the unkeyed cache). */
  readonly key?: string;
  /** Caches: whether `createVolume` found it, filled it from `seed`, or created it empty. */
  readonly opened?: CacheOpening;
}

/** One cache of the namespace, as {@link Driver.listCaches} lists it. */
export interface CacheEntry {
  /** A handle usable as {@link VolumeSpec.seed} (its `key` set for keyed caches). */
  readonly handle: VolumeHandle;
  /**
   * When a run last used it, as the driver knows (ISO date); a driver that cannot tell gives
   * the creation time and the runner adds its own record of uses.
   */
  readonly lastUsedAt?: string;
}

/**
 * A volume mounted into a task at `path`. A relative path is relative to the task's
 * default working directory (the fresh per-task directory; `/workspace` in containers),
 * not to `TaskSpec.workDir`, so `mount(src, "src")` with `workDir("src")` works inside
 * the volume. An absolute path is absolute.
 */
export interface Mount {
  /** The volume to mount. */
  readonly volume: VolumeHandle;
  /**
   * Where it appears in the task: relative to the default working directory (not to
   * `workDir`), or absolute.
   */
  readonly path: string;
}

/** CPU and memory limits for a task. */
export interface ResourceLimits {
  /** CPU in cores; fractional values allowed. */
  readonly cpu?: number;
  /** Memory in bytes. */
  readonly memoryBytes?: number;
}

/** Image pull policy for drivers that run images. */
export type PullPolicy = "missing" | "always" | "never";

/** Everything a driver needs to start one task. */
export interface TaskSpec {
  /** Run-scoped unique ID (distinct even for tasks with the same name). */
  readonly id: string;
  /** The task's name as the pipeline gave it. */
  readonly name: string;
  /** Container image; ignored by drivers whose `images` capability is false. */
  readonly image?: string;
  /** argv; index 0 is the executable. Never run through a shell by the driver. */
  readonly command: readonly string[];
  /** The task's own environment (the runner already added CI, POCKETCI, ...). */
  readonly env: Readonly<Record<string, string>>;
  /**
   * Working directory. Absent means the default working directory: a fresh per-task
   * directory (`/workspace` in containers). A relative path is relative to that default
   * directory (and may lie inside a mount: `workDir: "src"` with a volume mounted at
   * `"src"` works in the volume); it is created when it does not exist. An absolute path
   * is used as is.
   */
  readonly workDir?: string;
  /** Volumes to mount. */
  readonly mounts: readonly Mount[];
  /** Bytes written to standard input, which is then closed. */
  readonly stdin?: Uint8Array;
  /** User to run as. */
  readonly user?: string;
  /** Run privileged. */
  readonly privileged?: boolean;
  /** CPU and memory limits. */
  readonly limits?: ResourceLimits;
  /** Image pull policy (container drivers). */
  readonly pull?: PullPolicy;
  /** Image platform such as `linux/amd64` (container drivers). */
  readonly platform?: string;
  /** Explicit entrypoint; absent means the image's entrypoint is cleared. */
  readonly entrypoint?: readonly string[];
  /**
   * The task's own timeout (ms), which the runner enforces by stopping it. A driver may also hand
   * it to its backend as a safety net that outlives a dead runner (k8s: `activeDeadlineSeconds`,
   * with a margin so the runner's own stop comes first).
   */
  readonly timeoutMs?: number;
}

/** Which output stream a chunk came from. */
export type OutputStream = "stdout" | "stderr";

/**
 * Receives output chunks in order, per stream. A chunk is only valid during the call: the driver
 * may reuse its memory for the next read (as Go's `io.Writer` may not retain `p`), so a sink that
 * keeps bytes past the call copies them.
 */
export type OutputSink = (stream: OutputStream, chunk: Uint8Array) => void;

/** How a task or exec ended. */
export interface ExitStatus {
  /** Exit code; 128+N when killed by signal N. */
  readonly code: number;
  /** The signal number that killed the process, when one did. */
  readonly signal?: number;
  /** True when the kernel's OOM killer ended the process. */
  readonly oomKilled?: boolean;
}

/** A started task. */
export interface TaskHandle {
  /** The task's run-scoped ID. */
  readonly id: string;
  /** Resolves with the exit status once the task has exited and all its output was delivered. */
  wait(): Promise<ExitStatus>;
  /**
   * Stops the task: SIGTERM to the whole process group or container, then SIGKILL
   * after `graceMs`. Resolves once it is gone. Safe to call more than once.
   */
  stop(graceMs: number): Promise<void>;
  /** Removes the task's container or directory (not its volumes). Safe after exit. */
  remove(): Promise<void>;
}

/** One command run inside a started sandbox; settings apply to this call only. */
export interface ExecSpec {
  /** argv; index 0 is the executable. */
  readonly command: readonly string[];
  /** Extra environment for this call, on top of the sandbox's. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Working directory for this call; absent means the sandbox's own working directory.
   * A relative path is relative to the sandbox's default working directory (as for
   * {@link TaskSpec.workDir}), an absolute one is absolute; it must already exist.
   */
  readonly workDir?: string;
  /** Bytes written to standard input, which is then closed. */
  readonly stdin?: Uint8Array;
  /** User for this call. */
  readonly user?: string;
}

/** A long-lived environment that commands can be executed in, keeping state between calls. */
export interface SandboxHandle {
  /** The sandbox's run-scoped ID. */
  readonly id: string;
  /**
   * Runs one command. Resolves with its exit status; a non-zero exit is not an error.
   * When `signal` aborts, the command is killed (grace period `graceMs`) and the
   * promise resolves with the status it ended with.
   */
  exec(
    spec: ExecSpec,
    output: OutputSink,
    options?: { readonly signal?: AbortSignal; readonly graceMs?: number },
  ): Promise<ExitStatus>;
  /** Ends the sandbox and removes it. Safe to call more than once. */
  close(): Promise<void>;
}

/**
 * A long-running server the pipeline's tasks talk to (`service("db")`): the image's ENTRYPOINT
 * and CMD run unchanged unless `command` or `entrypoint` override them (unlike a task, whose
 * image entrypoint is cleared). The runner waits for readiness itself, through
 * {@link ServiceHandle.dial} and {@link ServiceHandle.exec}; the driver only starts, streams,
 * stops and connects.
 *
 * Name resolution: tasks of the same run reach the service as `name:port` (`db:5432`), on every
 * driver that gives tasks a network:
 * - docker (local, TCP, or over SSH, which cloud machines use: the same driver on a remote
 *   engine): a container on the run's network with the network alias `name`; tasks (direct or
 *   through a network holder, which sits on the same network) resolve it with the engine's DNS;
 * - k8s: a pod plus a ClusterIP Service of the same name in the run's namespace, so the
 *   cluster DNS resolves `name` from the run's pods (`name.<namespace>.svc` in full);
 * - Fly Machines: a machine in the run's app on its private network; every task and sandbox
 *   machine the run starts after it gets a `/etc/hosts` line mapping `name` to its private
 *   address;
 * - drivers whose tasks run on the host (native): no network of their own; tasks reach the
 *   service on `127.0.0.1:hostPort(port)`, and `hostPort(port)` is `port` itself.
 */
export interface ServiceSpec {
  /** Run-scoped unique ID. */
  readonly id: string;
  /** The service's name: a DNS label (`[a-z0-9-]`, at most 63), unique among the run's services. */
  readonly name: string;
  /** Container image; ignored by drivers whose `images` capability is false. */
  readonly image?: string;
  /**
   * Replaces the image's CMD (the ENTRYPOINT still runs unless `entrypoint` is given); absent
   * means the image's CMD. Drivers without images need it: it is the process they run.
   */
  readonly command?: readonly string[];
  /** Replaces the image's ENTRYPOINT; absent means the image's own (never cleared). */
  readonly entrypoint?: readonly string[];
  /** Environment (the runner already added CI, POCKETCI, ...). */
  readonly env: Readonly<Record<string, string>>;
  /** Working directory, as for {@link TaskSpec.workDir}; absent: the image's (containers). */
  readonly workDir?: string;
  /** Volumes to mount. */
  readonly mounts: readonly Mount[];
  /** User to run as. */
  readonly user?: string;
  /** Run privileged (the runner checked the operator's grant). */
  readonly privileged?: boolean;
  /** CPU and memory limits. */
  readonly limits?: ResourceLimits;
  /** Image pull policy. */
  readonly pull?: PullPolicy;
  /** Image platform. */
  readonly platform?: string;
  /**
   * TCP ports published to the runner's host on 127.0.0.1 only (never on other interfaces), each
   * on a port the driver picks ({@link ServiceHandle.hostPort}).
   */
  readonly ports: readonly number[];
}

/** A connection to a service port opened for a readiness probe. */
export interface ProbeConnection {
  /** Bytes from the service. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the service. */
  readonly writable: WritableStream<Uint8Array>;
  /** Closes the connection (safe to call more than once). */
  close(): void;
}

/** A started service. */
export interface ServiceHandle {
  /** The service's run-scoped ID. */
  readonly id: string;
  /**
   * Resolves with the exit status when the service's process ends (by itself or by `stop`);
   * an exit before `stop` is what the runner reports as a crash.
   */
  wait(): Promise<ExitStatus>;
  /** SIGTERM, then SIGKILL after `graceMs`; then removes it. Safe to call more than once. */
  stop(graceMs: number): Promise<void>;
  /** The host port (on 127.0.0.1) a port from {@link ServiceSpec.ports} is published on. */
  hostPort(port: number): number | undefined;
  /**
   * Opens a TCP connection to `port` of the service as its own network sees it (a container's
   * address on the run network, a host process's 127.0.0.1), never through a published port
   * (a proxy accepts connections before the server listens). Rejects when nothing listens.
   */
  dial(port: number, signal: AbortSignal): Promise<ProbeConnection>;
  /** Runs `command` inside the service (an `exec` readiness probe); output is discarded. */
  exec(command: readonly string[], signal: AbortSignal): Promise<ExitStatus>;
}

/** Kinds of resources a run records so `gc` can find what a killed run left behind. */
export type ResourceKind =
  | "process"
  | "dir"
  | "cgroup"
  | "container"
  | "volume"
  | "cache"
  | "network"
  | "vm"
  | "machine"
  | "app"
  | "key";

/** One resource a driver created or owns. */
export interface ResourceRecord {
  /** What it is. */
  readonly kind: ResourceKind;
  /** The driver's identifier for it (a pid, a path, a container ID, a machine ID ...). */
  readonly id: string;
  /** The driver that owns it. */
  readonly driver: DriverName;
  /** The run that created it (caches: the last run that used it). */
  readonly runId?: string;
  /** The namespace it belongs to. */
  readonly namespace?: string;
  /** When it was created or last used, as an ISO date. */
  readonly createdAt?: string;
  /** Driver-specific details (a process group, a host, a label). */
  readonly detail?: Readonly<Record<string, string>>;
}

/** What `close()` could not remove, for the runner to print and leave to `gc`. */
export interface CleanupReport {
  /** Resources that were removed. */
  readonly removed: readonly ResourceRecord[];
  /** Resources that could not be removed, with the reason. */
  readonly failed: readonly { readonly resource: ResourceRecord; readonly reason: string }[];
}

/** Services the runner gives a driver. */
export interface DriverContext {
  /** The namespace (stable per pipeline, or from the DSN). */
  readonly namespace: string;
  /** This run's unique ID. */
  readonly runId: string;
  /** A directory the driver may use for the run's scratch files; removed by the runner. */
  readonly runDir: string;
  /** A directory for namespace-scoped state that outlives runs (native caches live under it). */
  readonly stateDir: string;
  /**
   * Aborts once the run is being stopped (Ctrl-C, SIGTERM, `--timeout`, the pipeline ended):
   * slow preparation not yet tied to a task (an image pull) is abandoned and its start rejects.
   */
  readonly signal?: AbortSignal;
  /** Records a resource as soon as it exists, so `gc` can find it after `kill -9`. */
  record(resource: ResourceRecord): Promise<void>;
  /** Forgets a resource after it was removed. */
  forget(resource: ResourceRecord): Promise<void>;
  /** Prints a warning once (deduplicated by the runner). */
  warn(message: string): void;
  /**
   * Reports progress the user waits on (a cloud machine's provisioning stages) as an info line on
   * the terminal and a `log` event; optional so contexts that have nowhere to show it may omit it.
   */
  info?(message: string): void;
}

/** An execution backend bound to one run. */
export interface Driver {
  /** The driver's name. */
  readonly name: DriverName;
  /** What it can honour. */
  readonly capabilities: DriverCapabilities;
  /**
   * Why a capability is not claimed, when that depends on the host rather than the
   * driver (native `limits`: no usable cgroups), for the error a pipeline gets.
   */
  readonly unsupportedReasons?: Readonly<Partial<Record<CapabilityName, string>>>;
  /** Starts a task. Rejects with {@link DriverError} when it could not start. */
  startTask(spec: TaskSpec, output: OutputSink): Promise<TaskHandle>;
  /**
   * Re-attaches to a task of this run by its run-scoped ID: replays its output from
   * the start and follows it. Resolves `undefined` when no such task exists.
   */
  attachTask(id: string, output: OutputSink): Promise<TaskHandle | undefined>;
  /**
   * Creates (or, for an existing cache, opens) a volume. Idempotent by name, kind and key.
   * A cache that does not exist yet is filled from `spec.seed` when given, before the
   * promise resolves; the handle's `opened` tells which happened.
   */
  createVolume(spec: VolumeSpec): Promise<VolumeHandle>;
  /**
   * Every cache of this namespace with the logical `name` (all keys, the unkeyed one
   * included): the runner picks a restore source among them. Required with the `caches`
   * capability; drivers without it may omit it.
   */
  listCaches?(name: string): Promise<CacheEntry[]>;
  /** Removes a volume (caches are removed only by `gc`). */
  removeVolume(volume: VolumeHandle): Promise<void>;
  /** Extracts a tar stream into the volume, under `path` (default: its root). */
  putArchive(volume: VolumeHandle, tar: ReadableStream<Uint8Array>, path?: string): Promise<void>;
  /**
   * A tar stream of the volume's contents, or of only `paths` (relative to its root;
   * directories recursively). A missing path is a {@link DriverError} with code `not_found`.
   */
  getArchive(volume: VolumeHandle, paths?: readonly string[]): Promise<ReadableStream<Uint8Array>>;
  /** Starts a sandbox (requires the `sandboxes` capability). */
  startSandbox(spec: TaskSpec): Promise<SandboxHandle>;
  /**
   * Starts a service whose output goes to `output` (drivers without services omit it). Resolves
   * once its process runs, not once it is ready: readiness is the runner's (see
   * {@link ServiceHandle.dial}). Rejects with {@link DriverError} when it could not start.
   */
  startService?(spec: ServiceSpec, output: OutputSink): Promise<ServiceHandle>;
  /**
   * The pipeline's resources hint (`pipeline(name, { resources }, fn)`), given once it has loaded
   * and before its first call. A driver that provisions machines lazily sizes the machine from
   * it and the first task's limits, whichever is larger; others ignore it.
   */
  sizeHint?(hint: { readonly cpu: number; readonly memoryBytes: number }): void;
  /** Removes everything this run created, except caches. Never throws: failures are reported. */
  close(): Promise<CleanupReport>;
}

/** Maintenance operations that work without a live run (for `pocketci gc`). */
export interface DriverMaintenance {
  /** Everything the namespace owns on this backend (containers, volumes, caches, machines ...). */
  listResources(): Promise<ResourceRecord[]>;
  /** Removes one resource. */
  removeResource(resource: ResourceRecord): Promise<void>;
  /**
   * The sizes in bytes of these caches (as `listResources` listed them), by ID, for
   * `gc --cache-max`; a cache that cannot be measured is left out.
   */
  cacheSizes?(caches: readonly ResourceRecord[]): Promise<ReadonlyMap<string, number>>;
}

/** Machine-readable reasons a driver operation failed. */
export type DriverErrorCode =
  | "unsupported"
  | "not_found"
  | "image_not_found"
  | "command_not_found"
  | "unavailable"
  | "invalid"
  | "failed";

/** A driver operation failed; `message` is one line saying what and how to fix it. */
export class DriverError extends Error {
  /** Machine-readable reason. */
  readonly code: DriverErrorCode;
  /** Creates a driver error. */
  constructor(code: DriverErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DriverError";
    this.code = code;
  }
}

/** The pipeline used a capability the driver does not claim. */
export class UnsupportedError extends DriverError {
  /** The capability that was needed. */
  readonly capability: CapabilityName;
  /** Creates an error naming the driver and the capability. */
  constructor(driver: DriverName, capability: CapabilityName, hint?: string) {
    super(
      "unsupported",
      `the ${driver} driver does not support ${capability}${hint ? `: ${hint}` : ""}`,
    );
    this.name = "UnsupportedError";
    this.capability = capability;
  }
}

/** One Deno permission a driver needs, with the reason. */
export interface PermissionNeed {
  /** The Deno permission name. */
  readonly permission: "read" | "write" | "net" | "env" | "run" | "sys" | "ffi";
  /** Allowed values; `true` means unrestricted. */
  readonly values: readonly string[] | true;
  /** Why the driver needs it. */
  readonly reason: string;
}

/** A driver's entry in the registry: metadata plus a lazily loaded implementation. */
export interface DriverFactory {
  /** The driver's name. */
  readonly name: DriverName;
  /** Capabilities for a given resolved configuration. */
  capabilities(config: Readonly<Record<string, unknown>>): DriverCapabilities;
  /** The narrowest Deno permissions that work for this configuration. */
  permissions(config: Readonly<Record<string, unknown>>): PermissionNeed[];
  /** Creates a driver bound to one run. */
  create(config: Readonly<Record<string, unknown>>, context: DriverContext): Promise<Driver>;
  /** Maintenance access for `gc`; absent when the driver has nothing to collect. */
  maintenance?(
    config: Readonly<Record<string, unknown>>,
    context: DriverContext,
  ): Promise<DriverMaintenance>;
}

/**
 * The error of a driver whose services cannot publish ports on the runner's host (they run
 * elsewhere): tasks reach them by name instead.
 */
export function noHostPorts(
  driver: string,
  spec: Pick<ServiceSpec, "name" | "ports">,
): DriverError {
  return new DriverError(
    "invalid",
    `service ${spec.name}: the ${driver} driver publishes no port on this host (.ports(${
      spec.ports.join(", ")
    })); tasks reach the service at ${spec.name}:<port>, so drop .ports() or run the services with --service-driver=docker`,
  );
}
