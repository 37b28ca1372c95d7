/**
 * The runner's side of the DSL: a {@link PipelineHost} that runs tasks, sandboxes
 * and volume operations through one driver, with secrets resolved and masked,
 * `--parallelism` enforced, timeouts counted from each task's start, and every
 * started task cancellable.
 *
 * @module
 */

import {
  type CapabilityName,
  type Driver,
  DriverError,
  type ExitStatus,
  type Mount,
  type SandboxHandle,
  type ServiceSpec,
  type TaskHandle,
  type TaskSpec,
  UnsupportedError,
  type VolumeHandle,
} from "../drivers/contract.ts";
import type { DriverName } from "../dsn/types.ts";
import { longTimeout } from "../drivers/timers.ts";
import type {
  ExecRequest,
  GroupInfo,
  GroupOutcome,
  GroupRequest,
  PipelineHost,
  SandboxInfo,
  ServiceInfo,
  ServiceRequest,
  TaskRequest,
  VolumeInfo,
  VolumeRequest,
} from "../dsl/host.ts";
import type { EnvValue, OutputCallback, TaskResult, TaskStatus } from "../dsl/types.ts";
import {
  checkExecRequest,
  checkId,
  checkServiceRequest,
  checkTaskRequest,
  checkVolumeRequest,
  withChecked,
} from "./check_request.ts";
import { checkFiles, checkHashPatterns, checkPath, checkPaths } from "../dsl/validate.ts";
import { describeCacheOutcome, openCache } from "./cache_open.ts";
import { hashPipelineFiles } from "./hash_files.ts";
import type { RunEvent } from "./events.ts";
import { RunGroups } from "./groups.ts";
import { Attempts, runAttempts } from "./retry.ts";
import { confineHostPath, type HostPathPolicy } from "./host_paths.ts";
import { imageReferenceError } from "./image_ref.ts";
import { maskedLine, type Masker } from "./mask.ts";
import { Semaphore } from "./semaphore.ts";
import { RunServices } from "./services.ts";
import { TaskOutput } from "./task_output.ts";
import { volumeArchives } from "./volume_files.ts";

/** The default grace period between SIGTERM and SIGKILL. */
export const DEFAULT_GRACE_MS = 10_000;

/** The command a sandbox runs to stay alive (drivers that run processes use it). */
export const SANDBOX_KEEP_ALIVE: readonly string[] = Object.freeze([
  "sh",
  "-c",
  "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done",
]);

/** What a session needs. */
export interface SessionOptions {
  /** The driver bound to this run. */
  readonly driver: Driver;
  /** The driver's name. */
  readonly driverName: DriverName;
  /**
   * The driver services start on when it is not the run's (`--service-driver`, such as docker
   * services for native tasks); it cannot mount the run's volumes.
   */
  readonly serviceDriver?: Driver;
  /** This run's ID. */
  readonly runId: string;
  /** Masks secrets in everything that leaves the session. */
  readonly masker: Masker;
  /** Secret values the pipeline may reference, by name. */
  readonly secrets: ReadonlyMap<string, string>;
  /** Receives events (already masked). */
  readonly emit: (event: RunEvent) => void;
  /** Host path confinement. */
  readonly paths: HostPathPolicy;
  /** `--parallelism` (undefined: unlimited). */
  readonly parallelism?: number;
  /** `--grace`: between SIGTERM and SIGKILL when a task is stopped (default 10 s). */
  readonly graceMs?: number;
  /** Called when a cache is opened (to record its use). */
  readonly onCacheUse?: (volume: VolumeHandle) => Promise<void>;
  /**
   * The runner's record of cache uses: a lookup from a cache's driver ID to when it was last
   * used (ms since the epoch), for picking the newest cache to restore.
   */
  readonly cacheUses?: () => Promise<(id: string) => number | undefined>;
  /** Result buffer size per stream (characters kept at each end). */
  readonly outputKeep?: number;
  /** The state directory, never copied into a volume even when it lies inside the source. */
  readonly stateDir?: string;
  /** `--allow-privileged`: the operator lets `.privileged()` tasks and sandboxes run. */
  readonly allowPrivileged?: boolean;
}

/** A finished task as the runner remembers it. */
export interface TaskRecord {
  /** The result given to the pipeline. */
  readonly result: TaskResult;
  /** Whether failure was allowed. */
  readonly allowFailure: boolean;
  /** The last lines of its output. */
  readonly lastLines: readonly string[];
}

interface Running {
  stop(graceMs: number): void;
}

/** What every event and result of one task or sandbox call carries. */
interface Base {
  readonly id: string;
  readonly name: string;
  readonly allowFailure: boolean;
  /** The attempt it is on (`.retry()`). */
  readonly attempts: Attempts;
  /** The `group()` it was started in. */
  readonly groupId?: string;
}

/** The runner's implementation of the DSL's host interface for one run. */
export class RunSession implements PipelineHost {
  readonly #options: SessionOptions;
  readonly #slots: Semaphore;
  readonly #cancel = new AbortController();
  #graceMs: number;
  readonly #running = new Set<Running>();
  readonly #volumes = new Map<string, VolumeHandle>();
  readonly #sandboxes = new Map<string, { handle: SandboxHandle; name: string; closed: boolean }>();
  readonly #records: TaskRecord[] = [];
  readonly #services: RunServices;
  readonly #ids = new Set<string>();
  #sequence = 0;
  readonly #inflight = new Set<Promise<unknown>>();
  /** Tasks and calls requested but not finished, with whether they may outlive the pipeline. */
  readonly #unfinished = new Map<string, { name: string; mayOutlive: boolean }>();
  /** When each started task or call emitted its `task.start`. */
  readonly #startedAt = new Map<string, number>();
  readonly #groups: RunGroups;

  /** Creates a session. */
  constructor(options: SessionOptions) {
    this.#options = options;
    this.#graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    this.#slots = new Semaphore(options.parallelism ?? Infinity);
    this.#services = new RunServices({
      driver: options.serviceDriver ?? options.driver,
      emit: options.emit,
      newId: (name) => this.#newId(name),
      output: (id, name) => this.#output(id, name),
      spec: (id, request) => this.#serviceSpec(id, request),
      signal: this.#cancel.signal,
      graceMs: () => this.#graceMs,
      line: (error) => this.#line(error),
    });
    this.#groups = new RunGroups(options.emit);
  }

  /** Every finished task and sandbox call, in order of completion. */
  get records(): readonly TaskRecord[] {
    return this.#records;
  }

  /**
   * The names of tasks and sandbox calls still running (or queued) that were neither
   * `.background()` nor `.allowFailure()`: when the pipeline function has returned, these
   * are the ones it forgot to `await`.
   */
  unawaited(): string[] {
    return [...this.#unfinished.values()].filter((task) => !task.mayOutlive).map((task) =>
      task.name
    );
  }

  /** Aborts when the session is cancelled. */
  get signal(): AbortSignal {
    return this.#cancel.signal;
  }

  /**
   * Cancels everything running and everything started later: SIGTERM, then SIGKILL
   * after `graceMs`. Calling again with a shorter grace (a second Ctrl-C) kills now.
   */
  cancel(reason: string, graceMs: number = this.#graceMs): void {
    this.#graceMs = Math.min(this.#graceMs, graceMs);
    if (!this.#cancel.signal.aborted) this.#cancel.abort(reason);
    for (const running of this.#running) running.stop(this.#graceMs);
  }

  /** Resolves once every task and sandbox call started so far has finished. */
  async settled(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inflight.add(promise);
    promise.finally(() => this.#inflight.delete(promise)).catch(() => {});
    return promise;
  }

  /** Closes every sandbox still open; returns the failures. */
  async closeSandboxes(): Promise<{ id: string; reason: string }[]> {
    const failures: { id: string; reason: string }[] = [];
    for (const [id, sandbox] of this.#sandboxes) {
      if (sandbox.closed) continue;
      try {
        await this.closeSandbox(id);
      } catch (error) {
        failures.push({ id: sandbox.handle.id, reason: this.#line(error) });
      }
    }
    return failures;
  }

  /** An error's first line for display: masked first, then cut (never the reverse). */
  #line(error: unknown): string {
    return maskedLine(this.#options.masker, error);
  }

  #newId(name: string): string {
    // From the masked name: an ID is PocketCI's own and is never masked itself.
    const masked = this.#options.masker.mask(name).toLowerCase();
    const slug = masked.replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40) || "task";
    let id: string;
    do id = `${slug}-${++this.#sequence}`; while (this.#ids.has(id));
    this.#ids.add(id);
    return id;
  }

  #resolveEnv(env: Readonly<Record<string, EnvValue>> | undefined): Record<string, string> {
    const resolved: Record<string, string> = {};
    for (const [key, value] of Object.entries(env ?? {})) {
      if (typeof value === "string") {
        resolved[key] = value;
        continue;
      }
      const name = value.pocketciSecret;
      const secret = this.#options.secrets.get(name);
      if (secret === undefined) {
        throw new Error(
          `secret "${name}" is not available; pass \`--secret ${name}\` (from the environment) or \`--secret-file FILE\` to pocketci run`,
        );
      }
      resolved[key] = secret;
    }
    return resolved;
  }

  #checkCapabilities(
    request: {
      user?: string;
      privileged?: boolean;
      stdin?: Uint8Array;
      cpu?: number;
      memoryBytes?: number;
    },
    driver: Driver = this.#options.driver,
  ): void {
    const { capabilities } = driver;
    const unsupported = (capability: CapabilityName, remove: string, instead: string) =>
      this.#unsupported(capability, remove, instead, driver);
    if (request.user !== undefined && !capabilities.user) {
      throw unsupported("user", ".user()", "pick a driver that runs tasks as another user");
    }
    if (request.privileged && !capabilities.privileged) {
      throw unsupported("privileged", ".privileged()", "pick a container driver");
    }
    if (request.stdin !== undefined && !capabilities.stdin) {
      throw unsupported("stdin", ".stdin()", "pick a driver that feeds standard input");
    }
    if ((request.cpu !== undefined || request.memoryBytes !== undefined) && !capabilities.limits) {
      throw unsupported("limits", ".limits()", "pick a driver that enforces limits");
    }
  }

  /**
   * The error for an unclaimed capability: the driver's own reason when it gave one (it
   * depends on the host, as native limits do on cgroups), else what to pick instead.
   */
  #unsupported(
    capability: CapabilityName,
    remove: string,
    instead: string,
    driver: Driver = this.#options.driver,
  ): UnsupportedError {
    const { name, unsupportedReasons } = driver;
    const reason = unsupportedReasons?.[capability];
    return new UnsupportedError(
      name,
      capability,
      reason ? `${reason} (or remove ${remove})` : `remove ${remove} or ${instead}`,
    );
  }

  #mounts(request: { readonly mounts: TaskRequest["mounts"] }): Mount[] {
    return request.mounts.map((mount) => {
      const volume = this.#volumes.get(mount.volumeId);
      if (volume === undefined) throw new Error(`unknown volume "${mount.volumeId}"`);
      return { volume, path: mount.path };
    });
  }

  /** What the runner refuses whatever the driver: a malformed image, an ungranted privilege. */
  #checkRequest(request: { readonly image?: string; readonly privileged?: boolean }): void {
    const imageError = request.image === undefined
      ? undefined
      : imageReferenceError(request.image, (text) => this.#options.masker.mask(text));
    if (imageError !== undefined) throw new Error(imageError);
    if (request.privileged && !this.#options.allowPrivileged) {
      throw new Error(
        ".privileged() needs the operator's grant: pass --allow-privileged to pocketci run (or remove .privileged())",
      );
    }
  }

  #taskSpec(id: string, request: TaskRequest): TaskSpec {
    this.#checkRequest(request);
    this.#checkCapabilities(request);
    const env = {
      ...this.#resolveEnv(request.env),
      CI: "true",
      POCKETCI: "true",
      POCKETCI_RUN_ID: this.#options.runId,
      POCKETCI_TASK: request.name,
    };
    return {
      id,
      name: request.name,
      image: request.image,
      command: [...request.command],
      env,
      workDir: request.workDir,
      mounts: this.#mounts(request),
      stdin: request.stdin,
      user: request.user,
      privileged: request.privileged,
      limits: request.cpu !== undefined || request.memoryBytes !== undefined
        ? { cpu: request.cpu, memoryBytes: request.memoryBytes }
        : undefined,
      pull: request.pull,
      platform: request.platform,
      entrypoint: request.entrypoint,
      ...(request.timeoutMs === undefined ? {} : { timeoutMs: request.timeoutMs }),
    };
  }

  /** The result of a task or call that could not even be handed to the driver. */
  #notRun(
    kind: "task" | "exec",
    base: Base,
    error: unknown,
  ): TaskResult {
    return this.#finish(kind, base, {
      status: "error",
      code: null,
      durationMs: 0,
      error: this.#line(error),
    }, undefined);
  }

  #finish(
    kind: "task" | "exec",
    base: Base,
    outcome: { status: TaskStatus; code: number | null; durationMs: number; error?: string },
    output: TaskOutput | undefined,
  ): TaskResult {
    const masker = this.#options.masker;
    const error = outcome.error === undefined ? undefined : masker.mask(outcome.error);
    const startedAt = this.#startedAt.get(base.id);
    this.#startedAt.delete(base.id);
    const { attempts } = base;
    const attemptFields = attempts.eventFields;
    const retryInMs = attempts.decide(
      outcome.status,
      startedAt !== undefined,
      this.#cancel.signal.aborted,
    );
    if (retryInMs === undefined) this.#unfinished.delete(base.id);
    const result: TaskResult = {
      name: base.name,
      id: base.id,
      code: outcome.code,
      stdout: output?.stdout ?? "",
      stderr: output?.stderr ?? "",
      status: outcome.status,
      durationMs: Math.round(outcome.durationMs),
      ...(error === undefined ? {} : { error }),
      // An attempt that never started (cancelled before it, or refused) does not count.
      attempts: startedAt === undefined ? attempts.attempt - 1 : attempts.attempt,
    };
    if (retryInMs === undefined) {
      this.#records.push({
        result,
        allowFailure: base.allowFailure,
        lastLines: output?.lastLines(20) ?? [],
      });
    }
    this.#options.emit({
      type: "task.end",
      id: base.id,
      name: base.name,
      kind,
      status: result.status,
      code: result.code,
      durationMs: result.durationMs,
      ...(startedAt === undefined ? {} : { totalMs: Math.round(performance.now() - startedAt) }),
      allowFailure: base.allowFailure,
      ...(error === undefined ? {} : { error }),
      ...(base.groupId === undefined ? {} : { groupId: base.groupId }),
      ...attemptFields,
      ...(retryInMs === undefined ? {} : { retryInMs }),
    });
    return result;
  }

  #output(id: string, name: string, onOutput?: OutputCallback): TaskOutput {
    return new TaskOutput(
      this.#options.masker,
      (stream, data) => this.#options.emit({ type: "task.output", id, name, stream, data }),
      onOutput,
      this.#options.outputKeep,
    );
  }

  /**
   * Runs one unit of work (a task or a sandbox call) under the common rules: a slot,
   * a timeout from its start, cancellation, status from the exit.
   */
  async #execute(
    kind: "task" | "exec",
    base: Base,
    command: readonly string[],
    image: string | undefined,
    timeoutMs: number | undefined,
    onOutput: OutputCallback | undefined,
    start: (
      output: TaskOutput,
    ) => Promise<
      { wait(): Promise<ExitStatus>; stop(graceMs: number): void; remove(): Promise<void> }
    >,
  ): Promise<TaskResult> {
    let release: () => void;
    try {
      release = await this.#slots.acquire(this.#cancel.signal);
    } catch {
      return this.#finish(kind, base, {
        status: "cancelled",
        code: null,
        durationMs: 0,
        error: "the run was cancelled before the task started",
      }, undefined);
    }
    const output = this.#output(base.id, base.name, onOutput);
    const started = performance.now();
    try {
      // A task cancelled before it started never ran: no start event (the summary says skipped).
      if (this.#cancel.signal.aborted) {
        return this.#finish(kind, base, {
          status: "cancelled",
          code: null,
          durationMs: 0,
          error: "the run was cancelled before the task started",
        }, output);
      }
      this.#startedAt.set(base.id, started);
      this.#options.emit({
        type: "task.start",
        id: base.id,
        name: base.name,
        kind,
        command,
        image,
        ...(base.groupId === undefined ? {} : { groupId: base.groupId }),
        ...base.attempts.eventFields,
      });
      let work;
      try {
        work = await start(output);
      } catch (error) {
        output.flush();
        return this.#finish(kind, base, {
          // A start the run's stop abandoned (an image pull) was cancelled, not broken.
          status: this.#cancel.signal.aborted ? "cancelled" : "error",
          code: null,
          durationMs: performance.now() - started,
          error: this.#line(error),
        }, output);
      }
      const begun = performance.now();
      let ended: "timeout" | "cancelled" | undefined;
      const running: Running = { stop: (grace) => void work.stop(grace) };
      const onCancel = () => {
        ended ??= "cancelled";
        running.stop(this.#graceMs);
      };
      this.#running.add(running);
      this.#cancel.signal.addEventListener("abort", onCancel, { once: true });
      if (this.#cancel.signal.aborted) onCancel();
      const timer = timeoutMs === undefined ? undefined : longTimeout(() => {
        ended ??= "timeout";
        running.stop(this.#graceMs);
      }, timeoutMs);
      let exit: ExitStatus | undefined;
      let failure: unknown;
      try {
        exit = await work.wait();
      } catch (error) {
        failure = error;
      } finally {
        timer?.clear();
        this.#cancel.signal.removeEventListener("abort", onCancel);
        this.#running.delete(running);
      }
      output.flush();
      // The run's duration ends at the exit; removal counts only in the total.
      const durationMs = performance.now() - begun;
      await work.remove().catch((error) => {
        this.#options.emit({
          type: "warning",
          message: `could not remove ${base.id}: ${this.#line(error)}`,
        });
      });
      if (exit === undefined) {
        return this.#finish(kind, base, {
          status: ended ?? "error",
          code: null,
          durationMs,
          error: this.#line(failure),
        }, output);
      }
      if (ended === "timeout") {
        return this.#finish(kind, base, {
          status: "timeout",
          code: exit.code,
          durationMs,
          error: `stopped after the ${timeoutMs} ms timeout`,
        }, output);
      }
      if (ended === "cancelled") {
        return this.#finish(kind, base, {
          status: "cancelled",
          code: exit.code,
          durationMs,
          error: String(this.#cancel.signal.reason ?? "cancelled"),
        }, output);
      }
      return this.#finish(kind, base, {
        status: exit.code === 0 ? "success" : "failure",
        code: exit.code,
        durationMs,
        ...(exit.oomKilled ? { error: "killed by the out-of-memory killer" } : {}),
      }, output);
    } finally {
      release();
    }
  }

  /** Runs a task (the request is checked with the DSL's rules first, see check_request.ts). */
  runTask(request: TaskRequest, onOutput?: OutputCallback): Promise<TaskResult> {
    return withChecked(
      () => this.#knownGroup(checkTaskRequest(request, "task")),
      (checked) => this.#runTask(checked, onOutput),
    );
  }

  #runTask(request: TaskRequest, onOutput?: OutputCallback): Promise<TaskResult> {
    const base: Base = {
      id: this.#newId(request.name),
      name: request.name,
      allowFailure: !!request.allowFailure,
      attempts: new Attempts(request.retry),
      ...(request.groupId === undefined ? {} : { groupId: request.groupId }),
    };
    let spec: TaskSpec;
    try {
      spec = this.#taskSpec(base.id, request);
    } catch (error) {
      this.#options.emit({
        type: "task.start",
        id: base.id,
        name: base.name,
        kind: "task",
        command: request.command,
        image: request.image,
        ...(base.groupId === undefined ? {} : { groupId: base.groupId }),
        ...base.attempts.eventFields,
      });
      return Promise.resolve(this.#notRun("task", base, error));
    }
    this.#unfinished.set(base.id, {
      name: base.name,
      mayOutlive: !!request.background || base.allowFailure,
    });
    return this.#track(runAttempts(base.attempts, this.#cancel.signal, () =>
      this.#execute(
        "task",
        base,
        request.command,
        request.image,
        request.timeoutMs,
        onOutput,
        async (output) => {
          const handle: TaskHandle = await this.#options.driver.startTask(spec, output.sink);
          return {
            wait: () => handle.wait(),
            stop: (grace) => void handle.stop(grace).catch(() => {}),
            remove: () => handle.remove(),
          };
        },
      )));
  }

  /** Starts a sandbox (tracked, so cleanup waits for a start in flight and closes it). */
  startSandbox(request: TaskRequest): Promise<SandboxInfo> {
    return withChecked(
      () => checkTaskRequest(request, "sandbox"),
      (checked) => this.#track(this.#startSandbox(checked)),
    );
  }

  async #startSandbox(request: TaskRequest): Promise<SandboxInfo> {
    const driver = this.#options.driver;
    if (!driver.capabilities.sandboxes) {
      throw this.#unsupported("sandboxes", "sandbox()", "use task() instead");
    }
    this.#cancel.signal.throwIfAborted();
    const id = this.#newId(request.name);
    // A sandbox's timeout bounds each call, not the sandbox's life.
    const spec = this.#taskSpec(id, {
      ...request,
      command: SANDBOX_KEEP_ALIVE,
      timeoutMs: undefined,
    });
    const handle = await driver.startSandbox(spec);
    this.#sandboxes.set(id, { handle, name: request.name, closed: false });
    this.#options.emit({ type: "sandbox.start", id, name: request.name });
    return { id, name: request.name };
  }

  /** Runs one call in a sandbox. */
  execSandbox(
    sandboxId: string,
    request: ExecRequest,
    onOutput?: OutputCallback,
  ): Promise<TaskResult> {
    return withChecked(
      () => [checkId("sandbox", sandboxId), this.#knownGroup(checkExecRequest(request))] as const,
      ([id, checked]) => this.#execSandbox(id, checked, onOutput),
    );
  }

  #execSandbox(
    sandboxId: string,
    request: ExecRequest,
    onOutput?: OutputCallback,
  ): Promise<TaskResult> {
    const sandbox = this.#sandboxes.get(sandboxId);
    const base: Base = {
      id: this.#newId(`${sandbox?.name ?? "sandbox"}-exec`),
      name: sandbox?.name ?? sandboxId,
      allowFailure: !!request.allowFailure,
      attempts: new Attempts(request.retry),
      ...(request.groupId === undefined ? {} : { groupId: request.groupId }),
    };
    let env: Record<string, string>;
    try {
      if (sandbox === undefined || sandbox.closed) {
        throw new Error(`sandbox "${base.name}" is closed; start a new one`);
      }
      this.#checkCapabilities(request);
      env = this.#resolveEnv(request.env);
    } catch (error) {
      return Promise.resolve(this.#notRun("exec", base, error));
    }
    this.#unfinished.set(base.id, {
      name: base.name,
      mayOutlive: !!request.background || base.allowFailure,
    });
    return this.#track(runAttempts(base.attempts, this.#cancel.signal, () =>
      this.#execute(
        "exec",
        base,
        request.command,
        undefined,
        request.timeoutMs,
        onOutput,
        (output) => {
          const controller = new AbortController();
          let grace = this.#graceMs;
          const done = sandbox.handle.exec(
            {
              command: request.command,
              env,
              workDir: request.workDir,
              stdin: request.stdin,
              user: request.user,
            },
            output.sink,
            {
              signal: controller.signal,
              get graceMs() {
                return grace;
              },
            },
          );
          return Promise.resolve({
            wait: () => done,
            stop: (graceMs: number) => {
              grace = graceMs;
              if (!controller.signal.aborted) controller.abort();
              else if (graceMs === 0) void sandbox.handle.close().catch(() => {});
            },
            remove: () => Promise.resolve(),
          });
        },
      )));
  }

  /** `request` once its group ID (if any) is one this run handed out. */
  #knownGroup<T extends { groupId?: string }>(request: T): T {
    if (request.groupId !== undefined) this.#groups.check(request.groupId);
    return request;
  }

  /** Opens a log group (`group(name, fn)`); its ID goes with the tasks started in it. */
  startGroup(request: GroupRequest): Promise<GroupInfo> {
    return withChecked(() => this.#groups.start(request), (info) => Promise.resolve(info));
  }

  /** Closes a log group; a failed one is `cancelled` when the run was cancelled. */
  endGroup(groupId: string, outcome: GroupOutcome): Promise<void> {
    return withChecked(
      () => this.#groups.end(groupId, outcome, this.#cancel.signal.aborted),
      () => Promise.resolve(),
    );
  }

  /** Ends the groups pipeline code left open (it stopped inside them) as cancelled. */
  closeGroups(): void {
    this.#groups.closeAll();
  }

  /** Ends a sandbox. */
  async closeSandbox(sandboxId: string): Promise<void> {
    const sandbox = this.#sandboxes.get(checkId("sandbox", sandboxId));
    if (sandbox === undefined || sandbox.closed) return;
    sandbox.closed = true;
    await sandbox.handle.close();
    this.#options.emit({ type: "sandbox.end", id: sandboxId, name: sandbox.name });
  }

  #serviceSpec(id: string, request: ServiceRequest): ServiceSpec {
    this.#checkRequest(request);
    const { serviceDriver } = this.#options;
    this.#checkCapabilities(request, serviceDriver);
    if (serviceDriver !== undefined && request.mounts.length > 0) {
      throw new Error(
        `service "${request.name}" mounts a volume, but services run on the ${serviceDriver.name} service driver (--service-driver) while the run's volumes belong to the ${this.#options.driver.name} driver; remove .mount() from the service, or run without --service-driver`,
      );
    }
    return {
      id,
      name: request.name,
      image: request.image,
      ...(request.command === undefined ? {} : { command: [...request.command] }),
      ...(request.entrypoint === undefined ? {} : { entrypoint: [...request.entrypoint] }),
      env: {
        ...this.#resolveEnv(request.env),
        CI: "true",
        POCKETCI: "true",
        POCKETCI_RUN_ID: this.#options.runId,
        POCKETCI_SERVICE: request.name,
      },
      workDir: request.workDir,
      mounts: this.#mounts(request),
      user: request.user,
      privileged: request.privileged,
      limits: request.cpu !== undefined || request.memoryBytes !== undefined
        ? { cpu: request.cpu, memoryBytes: request.memoryBytes }
        : undefined,
      pull: request.pull,
      platform: request.platform,
      ports: [...request.ports],
    };
  }

  /** Starts a service and waits until it is ready (tracked, so cleanup waits for it). */
  startService(request: ServiceRequest): Promise<ServiceInfo> {
    return withChecked(
      () => checkServiceRequest(request),
      (checked) => this.#track(this.#services.start(checked)),
    );
  }

  /** Stops a service. */
  stopService(serviceId: string): Promise<void> {
    return withChecked(
      () => checkId("service", serviceId),
      (id) => this.#track(this.#services.stop(id)),
    );
  }

  /** The kept tail of a service's output. */
  serviceLogs(serviceId: string): Promise<string> {
    return withChecked(
      () => checkId("service", serviceId),
      (id) => Promise.resolve(this.#services.logs(id)),
    );
  }

  /** Stops every service still running (the pipeline ended); returns the failures. */
  stopServices(): Promise<{ id: string; reason: string }[]> {
    return this.#services.stopAll();
  }

  /** Creates a volume or opens a cache, seeding it from the host when asked (tracked). */
  createVolume(request: VolumeRequest): Promise<VolumeInfo> {
    return withChecked(
      () => checkVolumeRequest(request),
      (checked) => this.#track(this.#createVolume(checked)),
    );
  }

  async #createVolume(request: VolumeRequest): Promise<VolumeInfo> {
    this.#cancel.signal.throwIfAborted();
    const driver = this.#options.driver;
    if (request.kind === "cache" && !driver.capabilities.caches) {
      throw this.#unsupported("caches", "cache()", "use volume() instead");
    }
    const source = request.from === undefined
      ? undefined
      : await confineHostPath(this.#options.paths, request.from, "read");
    const opened = request.kind === "cache"
      ? await openCache(driver, request, await this.#options.cacheUses?.() ?? (() => undefined))
      : undefined;
    const handle = opened?.handle ??
      await driver.createVolume({ name: request.name, kind: request.kind });
    const id = `${request.kind}-${this.#volumes.size + 1}-${request.name}`;
    this.#volumes.set(id, handle);
    if (opened !== undefined) {
      this.#options.emit({
        type: "log",
        level: "info",
        message: describeCacheOutcome(request, opened),
      });
      await this.#options.onCacheUse?.(handle);
    }
    if (source !== undefined) {
      const exclude = [...(request.exclude ?? [])];
      const stateDir = this.#options.stateDir;
      if (stateDir !== undefined && stateDir.startsWith(source + "/")) {
        exclude.push("/" + stateDir.slice(source.length + 1));
      }
      await volumeArchives(driver).seed(handle, source, exclude);
    }
    if (opened === undefined) return { id, name: request.name, kind: request.kind };
    return {
      id,
      name: request.name,
      kind: request.kind,
      ...(request.key === undefined ? {} : { key: request.key }),
      hit: opened.hit,
      ...(opened.restoredKey === undefined ? {} : { restoredKey: opened.restoredKey }),
    };
  }

  /** Hashes files of the pipeline's directory (`hashFiles`); no match is a warning. */
  hashFiles(patterns: readonly string[]): Promise<string> {
    return withChecked(
      () => checkHashPatterns(patterns),
      (checked) => this.#track(this.#hashFiles(checked)),
    );
  }

  async #hashFiles(patterns: readonly string[]): Promise<string> {
    const { baseDir } = this.#options.paths;
    const { hash, files } = await hashPipelineFiles(baseDir, patterns, this.#options.stateDir);
    if (files.length === 0) {
      this.#options.emit({
        type: "log",
        level: "warn",
        message: `hashFiles(${
          patterns.map((p) => JSON.stringify(p)).join(", ")
        }): no file matches in ${baseDir}; the result is the hash of no files`,
      });
    }
    return hash;
  }

  #volume(id: string): VolumeHandle {
    const volume = this.#volumes.get(checkId("volume", id));
    if (volume === undefined) throw new DriverError("not_found", `unknown volume "${id}"`);
    return volume;
  }

  /** Reads files as text. */
  readFiles(volumeId: string, paths: readonly string[]): Promise<Record<string, string>> {
    return withChecked(
      () => [this.#volume(volumeId), checkPaths("readFiles", paths)] as const,
      ([volume, checked]) =>
        this.#track(volumeArchives(this.#options.driver).readFiles(volume, checked)),
    );
  }

  /** Reads one file's bytes. */
  readFile(volumeId: string, path: string): Promise<Uint8Array> {
    return withChecked(
      () => [this.#volume(volumeId), checkPath("readFile", path)] as const,
      ([volume, checked]) =>
        this.#track(volumeArchives(this.#options.driver).readFile(volume, checked)),
    );
  }

  /** Writes files. */
  writeFiles(
    volumeId: string,
    files: Readonly<Record<string, string | Uint8Array>>,
  ): Promise<void> {
    return withChecked(
      () => [this.#volume(volumeId), checkFiles(files)] as const,
      ([volume, checked]) =>
        this.#track(volumeArchives(this.#options.driver).writeFiles(volume, checked)),
    );
  }

  /** Exports a volume (or a path in it) to a confined host directory. */
  exportTo(volumeId: string, hostDir: string, path?: string): Promise<void> {
    return withChecked(
      () =>
        [
          checkPath("exportTo", hostDir),
          path === undefined ? undefined : checkPath("exportTo", path),
        ] as const,
      ([dir, inside]) => this.#track(this.#exportTo(volumeId, dir, inside)),
    );
  }

  async #exportTo(volumeId: string, hostDir: string, path?: string): Promise<void> {
    const volume = this.#volume(volumeId);
    const destination = await confineHostPath(this.#options.paths, hostDir, "write");
    await volumeArchives(this.#options.driver).exportTo(
      volume,
      destination,
      path,
      this.#options.paths,
    );
  }
}
