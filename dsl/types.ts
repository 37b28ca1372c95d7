/**
 * Types the pipeline author sees: task results, statuses, the pipeline context
 * and the shapes builders accept.
 *
 * @module
 */

/** How a task or sandbox call ended. */
export type TaskStatus = "success" | "failure" | "timeout" | "cancelled" | "error";

/** The outcome of a task or sandbox call. */
export interface TaskResult {
  /** The name the pipeline gave. */
  readonly name: string;
  /** The run-scoped unique ID (distinct for tasks with the same name). */
  readonly id: string;
  /** Exit code; 128+N when killed by signal N; `null` when the process never ran. */
  readonly code: number | null;
  /** Standard output (secrets masked, bounded: head and tail kept, truncation marked). */
  readonly stdout: string;
  /** Standard error (secrets masked, bounded like stdout). */
  readonly stderr: string;
  /** How it ended. */
  readonly status: TaskStatus;
  /** Wall-clock duration from start to exit, in milliseconds. */
  readonly durationMs: number;
  /** Why it could not run (status `"error"`) or why it was stopped. */
  readonly error?: string;
  /**
   * How many attempts ran (1 without `.retry()`; 0 when it never started). The other
   * fields describe the last attempt.
   */
  readonly attempts: number;
}

/** What the pipeline function receives. */
export interface PipelineContext {
  /** This run's unique ID. */
  readonly runId: string;
  /** The driver's name (`native`, `docker`, ...). */
  readonly driver: string;
  /**
   * The driver services run on: the run's driver, or the one the operator chose with
   * `pocketci run --service-driver` (docker services for native tasks).
   */
  readonly serviceDriver: string;
  /** The namespace resources are grouped under. */
  readonly namespace: string;
  /** Arguments given after `--` on the command line. */
  readonly args: readonly string[];
  /** Aborts when the run is cancelled (Ctrl-C, SIGTERM, `--timeout`). */
  readonly signal: AbortSignal;
}

/** A pipeline body. */
export type PipelineFunction = (ctx: PipelineContext) => Promise<void> | void;

/** Receives output chunks as they arrive (secrets already masked). */
export type OutputCallback = (stream: "stdout" | "stderr", chunk: string) => void;

/** CPU and memory limits as the author writes them. */
export interface Limits {
  /** CPU in cores; fractional values allowed. */
  readonly cpu?: number;
  /** Memory in bytes, or a quantity: `"512Mi"`, `"1Gi"` (binary), `"512M"`, `"512MB"` (decimal). */
  readonly memory?: number | string;
}

/** Image pull policy for container drivers. */
export type PullPolicy = "missing" | "always" | "never";

/** A reference to a secret by name, resolved by the runner (never by pipeline code). */
export interface SecretRef {
  /** The secret's name (`--secret NAME` or a key of `--secret-file`). */
  readonly pocketciSecret: string;
}

/** An environment variable value: text, or a secret the runner resolves. */
export type EnvValue = string | SecretRef;

/** Options for `volume(name, opts)`. */
export interface VolumeOptions {
  /** Seed the volume with a copy of this host directory (relative to the pipeline file's directory). */
  readonly from?: string;
  /** Glob-like patterns (relative to `from`) left out of the copy, such as `node_modules`. */
  readonly exclude?: readonly string[];
}

/** A cache key: a string, or parts joined with `-` (`["npm", hash]` is `npm-<hash>`). */
export type CacheKey = string | readonly string[];

/** Options for `cache(name, opts)`. */
export interface CacheOptions {
  /**
   * The content version: the cache used is `name` plus this key. Printable ASCII without
   * spaces, at most 512 characters once joined.
   */
  readonly key?: CacheKey;
  /**
   * On a miss (no cache with exactly `key`), the most recently used cache of the same name
   * whose key starts with one of these prefixes (tried in order) is copied in as the start.
   */
  readonly restoreKeys?: readonly CacheKey[];
}

/** How a cache was opened: its exact key existed, it was restored from another key, or neither. */
export type CacheHit = "exact" | "restored" | "miss";

/** Options for `exportTo(hostDir, opts)`. */
export interface ExportOptions {
  /** A path inside the volume whose contents are exported (default: the whole volume). */
  readonly path?: string;
}

/**
 * How `service(name).ready(probe)` decides the service is ready: a TCP connection to a port
 * succeeds, an HTTP GET answers 200-399 (the URL's host is the service itself: `localhost`,
 * `127.0.0.1` or its name), or a command run inside the service exits 0.
 */
export type ReadyProbe =
  | { readonly tcp: number }
  | { readonly http: string }
  | { readonly exec: readonly string[] };

/** Options of `service(name).ready(probe, options)`. */
export interface ReadyOptions {
  /** How long to wait for the probe to pass (`"60s"` by default). */
  readonly timeout?: number | string;
  /** The time between attempts (`"500ms"` by default). */
  readonly interval?: number | string;
}
