/**
 * One pipeline run, start to finish: state journal, driver, session, pipeline
 * process, cancellation (pipeline end, `--timeout`, SIGINT, SIGTERM), cleanup of
 * everything the run created, and the outcome with its exit code.
 *
 * @module
 */

import type {
  Driver,
  DriverContext,
  DriverFactory,
  ResourceRecord,
  VolumeHandle,
} from "../drivers/contract.ts";
import type { ResolvedDsn } from "../dsn/types.ts";
import type { Leftover, Reporter, RunEvent, RunStatus } from "./events.ts";
import { Masker } from "./mask.ts";
import { maskEvent } from "./mask_event.ts";
import { LogDirReporter } from "./reporters.ts";
import {
  PipelineLoadError,
  type PipelinePermissions,
  PipelineProcess,
} from "./pipeline_process.ts";
import { userFrame, type WireError } from "./rpc.ts";
import { DEFAULT_GRACE_MS, RunSession, type TaskRecord } from "./session.ts";
import {
  type ProcessIdentity,
  readCacheUses,
  recordCacheUse,
  RunJournal,
  runPaths,
} from "./state.ts";
import { type LongTimeout, longTimeout, sleep } from "../drivers/timers.ts";

/** What cleanup needs of a driver: its name and `close()`. */
type ClosableDriver = Pick<Driver, "name" | "close">;

/** Exit codes of `pocketci run`. */
export const EXIT = {
  success: 0,
  failure: 1,
  usage: 2,
  timeout: 124,
  sigint: 130,
  sigterm: 143,
} as const;

/** Everything a run needs. */
export interface RunOptions {
  /** Absolute path of the pipeline file. */
  readonly pipelinePath: string;
  /** The resolved driver configuration. */
  readonly dsn: ResolvedDsn;
  /** The driver factory (default: from the registry). */
  readonly factory?: DriverFactory;
  /**
   * `--service-driver`: the driver the run's services start on instead of the run's own (same
   * run ID, namespace, journal and state directory; closed with it on every exit path).
   */
  readonly serviceDsn?: ResolvedDsn;
  /** The service driver's factory (default: from the registry). */
  readonly serviceFactory?: DriverFactory;
  /** This run's ID. */
  readonly runId: string;
  /** Arguments after `--`. */
  readonly args: readonly string[];
  /** Secret values the pipeline may reference, by name. */
  readonly secrets: ReadonlyMap<string, string>;
  /** `--parallelism`. */
  readonly parallelism?: number;
  /** `--timeout` in milliseconds. */
  readonly timeoutMs?: number;
  /** The state directory. */
  readonly stateDir: string;
  /** What the user granted pipeline code (forwarded `--allow-*`). */
  readonly permissions: PipelinePermissions;
  /** Real paths of the pipeline's own source files; exportTo does not overwrite them. */
  readonly sourceFiles?: readonly string[];
  /**
   * A private (0700) directory for the pipeline process's socket, removed when the
   * run ends (default: a new temporary directory).
   */
  readonly privateDir?: string;
  /**
   * Run the automatic gc of caches and run logs (at most daily, see `auto_gc.ts`) after
   * the run's own resources are removed; `pocketci run` sets it unless POCKETCI_NO_AUTO_GC.
   */
  readonly autoGc?: boolean;
  /** The pipeline process's heap limit in MB (`--pipeline-memory`, default 2048). */
  readonly pipelineMemoryMb?: number;
  /** An import was allowed with `--allow-import`: the pipeline process may fetch it. */
  readonly importsFetch?: boolean;
  /** Where events go (already masked). */
  readonly reporters: readonly Reporter[];
  /** The runner process, for `gc` (default: this process, start time unknown). */
  readonly process?: ProcessIdentity;
  /** Grace period between SIGTERM and SIGKILL (default 10 s). */
  readonly graceMs?: number;
  /** Result buffer size per stream. */
  readonly outputKeep?: number;
  /** `--allow-privileged`: `.privileged()` tasks and sandboxes may run. */
  readonly allowPrivileged?: boolean;
}

/** How a run ended. */
export interface RunOutcome {
  /** The process exit code. */
  readonly exitCode: number;
  /** The run's status. */
  readonly status: RunStatus;
  /** The run's ID. */
  readonly runId: string;
  /** Where its logs are. */
  readonly logDir: string;
  /** Every task and sandbox call. */
  readonly tasks: readonly TaskRecord[];
  /** What could not be removed. */
  readonly leftovers: readonly Leftover[];
  /** The pipeline's error, when it failed. */
  readonly error?: string;
}

function oneLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}

/** How long a stopped run waits for the pipeline process to finish before cleaning up. */
const STOP_SETTLE_MS = 2_000;

/** A pipeline run; `start()` runs it, `interrupt()` handles SIGINT/SIGTERM. */
export class PipelineRun {
  readonly #options: RunOptions;
  readonly #masker: Masker;
  #session: RunSession | undefined;
  #worker: PipelineProcess | undefined;
  #factory: DriverFactory | undefined;
  #stop: ((reason: "SIGINT" | "SIGTERM" | "timeout") => void) | undefined;
  #stopReason: "SIGINT" | "SIGTERM" | "timeout" | undefined;
  /** When `--timeout` ends the run (a `performance.now()` time); grace periods end by it. */
  #deadline: number | undefined;
  /** Aborts work in flight in the driver (image pulls) once the run is being stopped. */
  readonly #abort = new AbortController();
  readonly #warned = new Set<string>();
  readonly #reporters: Reporter[];

  /** Prepares a run. */
  constructor(options: RunOptions, dsnSecrets: readonly string[] = []) {
    this.#options = options;
    // PocketCI's own strings stay readable even when a secret occurs in them.
    this.#masker = new Masker([...options.secrets.values(), ...dsnSecrets], {
      protect: [options.runId, options.stateDir, options.pipelinePath],
    });
    this.#reporters = [...options.reporters];
  }

  #emit(event: RunEvent): void {
    const masked = maskEvent(this.#masker, event);
    for (const reporter of this.#reporters) {
      try {
        reporter.event(masked);
      } catch {
        // A reporter must not break the run.
      }
    }
  }

  /**
   * Handles a signal: the first cancels everything with the grace period; a second
   * SIGINT kills what is still running at once (resources are still removed). `why` replaces
   * "SIGTERM received" in the warning when something else stops the run the same way.
   */
  interrupt(signal: "SIGINT" | "SIGTERM", why = `${signal} received`): void {
    if (this.#stopReason === undefined) {
      this.#stopReason = signal;
      this.#emit({
        type: "warning",
        message: `${why}: stopping tasks (press Ctrl-C again to kill them now)`,
      });
      this.#cancel(`interrupted by ${signal}`, this.#grace());
      this.#stop?.(signal);
    } else if (signal === "SIGINT") {
      this.#emit({ type: "warning", message: "second SIGINT: killing tasks now" });
      this.#session?.cancel(`interrupted by ${signal}`, 0);
    }
  }

  /** The grace period for a stop starting now: `--grace`, cut short at the `--timeout` deadline. */
  #grace(): number {
    const grace = this.#options.graceMs ?? DEFAULT_GRACE_MS;
    if (this.#deadline === undefined) return grace;
    return Math.min(grace, Math.max(0, Math.ceil(this.#deadline - performance.now())));
  }

  #cancel(reason: string, graceMs: number): void {
    this.#abort.abort(reason);
    this.#session?.cancel(reason, graceMs);
    this.#worker?.abort(reason);
  }

  /** Runs the pipeline and cleans up; never throws. */
  async start(): Promise<RunOutcome> {
    const options = this.#options;
    const started = performance.now();
    const paths = runPaths(options.stateDir, options.runId, options.dsn.namespace);
    const driverName = options.dsn.driver;
    const serviceDriverName = options.serviceDsn?.driver;
    const leftovers: Leftover[] = [];
    const finish = async (
      status: RunStatus,
      exitCode: number,
      error?: string,
      failedTask?: { id: string; name: string; lastLines: readonly string[] },
      stack?: string,
    ): Promise<RunOutcome> => {
      this.#emit({
        type: "run.end",
        status,
        exitCode,
        durationMs: Math.round(performance.now() - started),
        logDir: paths.logDir,
        ...(error === undefined ? {} : { error }),
        ...(stack === undefined ? {} : { stack }),
        ...(failedTask ? { failedTask } : {}),
        leftovers,
      });
      for (const reporter of this.#reporters) await reporter.close?.().catch(() => {});
      return {
        exitCode,
        status,
        runId: options.runId,
        logDir: paths.logDir,
        tasks: this.#session?.records ?? [],
        leftovers,
        ...(error === undefined ? {} : { error: this.#masker.mask(error) }),
      };
    };

    try {
      this.#reporters.push(await LogDirReporter.create(paths.logDir));
    } catch (error) {
      return finish(
        "error",
        EXIT.usage,
        `cannot write the log directory ${paths.logDir}: ${oneLine(error)}`,
      );
    }
    this.#emit({
      type: "run.start",
      runId: options.runId,
      pipeline: options.pipelinePath,
      driver: driverName,
      ...(serviceDriverName === undefined ? {} : { serviceDriver: serviceDriverName }),
      namespace: options.dsn.namespace,
      logDir: paths.logDir,
    });
    // The DSN layer's warnings (an unknown parameter ...) name parameters, never values.
    for (const message of options.dsn.warnings) this.#emit({ type: "warning", message });
    for (const message of options.serviceDsn?.warnings ?? []) {
      this.#emit({ type: "warning", message: `--service-driver: ${message}` });
    }

    try {
      const info = await Deno.stat(options.pipelinePath);
      if (!info.isFile) throw new Error("not a file");
    } catch {
      return finish(
        "error",
        EXIT.usage,
        `pipeline file ${options.pipelinePath} does not exist; pass the path of a .ts file`,
      );
    }

    // The pipeline process boots and loads the pipeline while the driver starts.
    let privateDir = options.privateDir;
    const starting = (async () => {
      privateDir ??= await Deno.makeTempDir({ prefix: "pocketci-" });
      return await PipelineProcess.start({
        pipelinePath: options.pipelinePath,
        permissions: options.permissions,
        privateDir,
        memoryMb: options.pipelineMemoryMb,
        fetches: options.importsFetch,
      }, {
        log: (level, message, groupId) =>
          this.#emit({ type: "log", level, message, ...(groupId ? { groupId } : {}) }),
        mask: (error) => this.#masker.maskDeep(error),
      });
    })();
    starting.catch(() => {});
    const stopPipeline = async () => {
      await (await starting.catch(() => undefined))?.terminate();
      if (privateDir !== undefined) {
        await Deno.remove(privateDir, { recursive: true }).catch(() => {});
      }
    };

    let journal: RunJournal;
    try {
      journal = await RunJournal.create(paths.journal, {
        runId: options.runId,
        namespace: options.dsn.namespace,
        driver: driverName,
        ...(serviceDriverName === undefined ? {} : { serviceDriver: serviceDriverName }),
        pipeline: options.pipelinePath,
        process: options.process ?? { pid: Deno.pid },
        startedAt: new Date().toISOString(),
      });
      await Deno.mkdir(paths.workDir, { recursive: true });
    } catch (error) {
      await stopPipeline();
      return finish(
        "error",
        EXIT.usage,
        `cannot write the state directory ${options.stateDir}: ${oneLine(error)}`,
      );
    }
    const workDirRecord: ResourceRecord = {
      kind: "dir",
      id: paths.workDir,
      driver: driverName,
      runId: options.runId,
      namespace: options.dsn.namespace,
      createdAt: new Date().toISOString(),
      detail: { owner: "runner" },
    };
    await journal.record(workDirRecord);

    const context: DriverContext = {
      namespace: options.dsn.namespace,
      runId: options.runId,
      runDir: paths.workDir,
      stateDir: options.stateDir,
      signal: this.#abort.signal,
      record: (resource) => journal.record(resource),
      forget: (resource) => journal.forget(resource),
      warn: (message) => {
        if (this.#warned.has(message)) return;
        this.#warned.add(message);
        this.#emit({ type: "warning", message });
      },
      info: (message) => this.#emit({ type: "log", level: "info", message }),
    };

    const cleanupRunDir = async () => {
      try {
        await Deno.remove(paths.workDir, { recursive: true });
        await journal.forget(workDirRecord);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) await journal.forget(workDirRecord);
        else leftovers.push({ kind: "dir", id: paths.workDir, reason: oneLine(error) });
      }
      await journal.finish().catch(() => {});
    };

    let factory: DriverFactory;
    let driver;
    try {
      factory = options.factory ??
        await (await import("../drivers/registry.ts")).getDriverFactory(driverName);
      driver = await factory.create(options.dsn.config, context);
      this.#factory = factory;
    } catch (error) {
      await stopPipeline();
      await cleanupRunDir();
      return finish(
        "error",
        EXIT.usage,
        `cannot start the ${driverName} driver: ${oneLine(error)}`,
      );
    }
    let serviceDriver: Driver | undefined;
    if (options.serviceDsn !== undefined) {
      try {
        const serviceFactory = options.serviceFactory ??
          await (await import("../drivers/registry.ts")).getDriverFactory(
            options.serviceDsn.driver,
          );
        serviceDriver = await serviceFactory.create(options.serviceDsn.config, context);
      } catch (error) {
        await driver.close().catch(() => {});
        await stopPipeline();
        await cleanupRunDir();
        return finish(
          "error",
          EXIT.usage,
          `cannot start the ${serviceDriverName} service driver (--service-driver): ${
            oneLine(error)
          }`,
        );
      }
    }
    const drivers: ClosableDriver[] = [
      ...(serviceDriver === undefined ? [] : [serviceDriver]),
      driver,
    ];

    const session = new RunSession({
      driver,
      driverName,
      ...(serviceDriver === undefined ? {} : { serviceDriver }),
      runId: options.runId,
      masker: this.#masker,
      secrets: options.secrets,
      emit: (event) => this.#emit(event),
      paths: {
        baseDir: options.pipelinePath.slice(0, options.pipelinePath.lastIndexOf("/")) || "/",
        readRoots: rootsOf(options.permissions.read),
        writeRoots: rootsOf(options.permissions.write),
        protectedFiles: options.sourceFiles ?? [options.pipelinePath],
      },
      parallelism: options.parallelism,
      graceMs: options.graceMs,
      outputKeep: options.outputKeep,
      stateDir: options.stateDir,
      allowPrivileged: options.allowPrivileged,
      cacheUses: async () => {
        const uses = await readCacheUses(options.stateDir);
        return (id: string) => {
          const use = uses.get(`${driverName}/${id}`);
          return use === undefined ? undefined : Date.parse(use.usedAt) || undefined;
        };
      },
      onCacheUse: async (volume: VolumeHandle) => {
        const usedAt = new Date().toISOString();
        await journal.record({
          kind: "cache",
          id: volume.id,
          driver: driverName,
          runId: options.runId,
          namespace: options.dsn.namespace,
          createdAt: usedAt,
          detail: { name: volume.name },
        });
        await recordCacheUse(options.stateDir, {
          driver: driverName,
          namespace: options.dsn.namespace,
          name: volume.name,
          id: volume.id,
          usedAt,
        });
      },
    });
    this.#session = session;

    let status: RunStatus = "success";
    let exitCode: number = EXIT.success;
    let errorText: string | undefined;
    let failedTask: { id: string; name: string; lastLines: readonly string[] } | undefined;
    let stack: string | undefined;
    let timer: LongTimeout | undefined;
    try {
      let loaded;
      try {
        const worker = await starting;
        loaded = { worker, name: await worker.attach(session) };
      } catch (error) {
        status = "error";
        exitCode = EXIT.usage;
        errorText = error instanceof PipelineLoadError
          ? `cannot load the pipeline: ${error.message}${npmHint(error.message)}`
          : `cannot load the pipeline: ${oneLine(error)}`;
        stack = error instanceof PipelineLoadError ? error.pipelineStack : undefined;
        return await this.#cleanup(
          drivers,
          session,
          leftovers,
          cleanupRunDir,
          () => finish(status, exitCode, errorText, undefined, stack),
        );
      }
      this.#worker = loaded.worker;
      const hint = loaded.worker.resources;
      if (hint !== undefined) {
        driver.sizeHint?.(hint);
        serviceDriver?.sizeHint?.(hint);
      }
      if (this.#stopReason !== undefined) {
        this.#cancel(`interrupted by ${this.#stopReason}`, this.#grace());
      }
      const stopped = new Promise<"SIGINT" | "SIGTERM" | "timeout">((resolve) => {
        this.#stop = resolve;
        if (this.#stopReason !== undefined) resolve(this.#stopReason);
      });
      if (options.timeoutMs !== undefined) {
        // A hard deadline, grace included: what still runs when it expires is killed at once.
        this.#deadline = performance.now() + options.timeoutMs;
        timer = longTimeout(() => {
          if (this.#stopReason !== undefined) {
            this.#session?.cancel("the run timed out", 0);
            return;
          }
          this.#stopReason = "timeout";
          this.#emit({
            type: "warning",
            message: `the run's ${options.timeoutMs} ms timeout expired: killing tasks now`,
          });
          this.#cancel("the run timed out", 0);
          this.#stop?.("timeout");
        }, options.timeoutMs);
      }
      const pipelineDone = loaded.worker.run({
        runId: options.runId,
        driver: driverName,
        serviceDriver: serviceDriverName ?? driverName,
        namespace: options.dsn.namespace,
        args: options.args,
      });
      const outcome = await Promise.race([
        pipelineDone.then((error) => ({ kind: "done" as const, error })),
        stopped.then((reason) => ({ kind: "stopped" as const, reason })),
      ]);
      if (outcome.kind === "stopped") {
        // What the pipeline's ctx.signal listeners log on the abort is still on its way
        // through the socket: let it arrive (bounded) before the run ends.
        const settled = new AbortController();
        await Promise.race([pipelineDone, sleep(STOP_SETTLE_MS, settled.signal)]);
        settled.abort();
        status = outcome.reason === "timeout" ? "timeout" : "cancelled";
        exitCode = outcome.reason === "timeout"
          ? EXIT.timeout
          : outcome.reason === "SIGINT"
          ? EXIT.sigint
          : EXIT.sigterm;
        errorText = outcome.reason === "timeout"
          ? `the run exceeded its --timeout of ${options.timeoutMs} ms`
          : `the run was interrupted by ${outcome.reason}`;
      } else if (outcome.error !== undefined) {
        status = "failure";
        exitCode = EXIT.failure;
        ({ errorText, failedTask } = describeFailure(outcome.error, session));
        stack = outcome.error.stack;
      } else if (session.unawaited().length > 0) {
        status = "failure";
        exitCode = EXIT.failure;
        errorText = unawaitedError(session.unawaited());
      }
      return await this.#cleanup(
        drivers,
        session,
        leftovers,
        cleanupRunDir,
        () => finish(status, exitCode, errorText, failedTask, stack),
      );
    } finally {
      timer?.clear();
      await stopPipeline();
    }
  }

  async #cleanup(
    drivers: readonly ClosableDriver[],
    session: RunSession,
    leftovers: Leftover[],
    cleanupRunDir: () => Promise<void>,
    then: () => Promise<RunOutcome>,
  ): Promise<RunOutcome> {
    this.#abort.abort("the pipeline finished");
    session.cancel("the pipeline finished while the task was running", this.#grace());
    this.#worker?.abort("the pipeline finished");
    await session.settled();
    session.closeGroups();
    for (const failure of await session.stopServices()) {
      leftovers.push({ kind: "service", id: failure.id, reason: failure.reason });
    }
    for (const failure of await session.closeSandboxes()) {
      leftovers.push({ kind: "sandbox", id: failure.id, reason: failure.reason });
    }
    // The service driver first (its services are stopped already), then the run's.
    for (const driver of drivers) {
      try {
        const report = await driver.close();
        for (const failure of report.failed) {
          leftovers.push({
            kind: failure.resource.kind,
            id: failure.resource.id,
            reason: this.#masker.mask(failure.reason),
          });
        }
      } catch (error) {
        leftovers.push({
          kind: "driver",
          id: driver.name,
          reason: this.#masker.mask(oneLine(error)),
        });
      }
    }
    // Gone before run.end, with everything it printed reported.
    await this.#worker?.terminate();
    await cleanupRunDir();
    if (this.#options.autoGc && this.#factory !== undefined) {
      const { autoGc } = await import("./auto_gc.ts");
      await autoGc({
        stateDir: this.#options.stateDir,
        dsn: this.#options.dsn,
        factory: this.#factory,
        log: (level, message) => this.#emit({ type: "log", level, message }),
      });
    }
    return then();
  }
}

function rootsOf(value: boolean | readonly string[]): string[] {
  if (value === true) return ["/"];
  if (value === false) return [];
  return [...value];
}

/** The run's error when the pipeline function returned with `names` still running. */
export function unawaitedError(names: readonly string[]): string {
  const shown = names.slice(0, 5).map((name) => JSON.stringify(name)).join(", ");
  const more = names.length > 5 ? ` and ${names.length - 5} more` : "";
  const one = names.length === 1;
  return `the pipeline function returned while ${one ? "task" : "tasks"} ${shown}${more} ${
    one ? "was" : "were"
  } still running (now cancelled): \`await\` ${one ? "it" : "them"}, or mark ${
    one ? "it" : "them"
  } .background() to let ${one ? "it" : "them"} be cancelled when the pipeline ends`;
}

function describeFailure(
  error: WireError,
  session: RunSession,
): { errorText: string; failedTask?: { id: string; name: string; lastLines: readonly string[] } } {
  const result = error.result as { id?: string; name?: string } | undefined;
  if (error.name === "TaskError" && result?.id !== undefined) {
    const record = session.records.find((entry) => entry.result.id === result.id);
    return {
      errorText: error.message,
      failedTask: {
        id: result.id,
        name: result.name ?? result.id,
        lastLines: record?.lastLines ?? [],
      },
    };
  }
  if (error.name === "UncaughtError") {
    return {
      errorText:
        `the pipeline did not handle an error (await every task, or catch it): ${error.message}`,
    };
  }
  if (error.name === "PipelineProcessError") return { errorText: error.message };
  const where = error.message.includes(" (at ") ? "" : userFrame((error.stack ?? "").split("\n"));
  return {
    errorText: `the pipeline threw ${error.name === "Error" ? "an error" : error.name}: ${
      error.message.split("\n")[0]
    }${where}`,
  };
}

/** A hint for an npm package that is not in Deno's cache (the pipeline process fetches nothing). */
function npmHint(message: string): string {
  const match = /Failed loading .* for package "([^"]+)"|npm package '([^']+)'.*not.*cache/i
    .exec(message);
  if (match === null) return "";
  const name = match[1] ?? match[2];
  return `; npm packages load only from Deno's cache: run \`deno cache npm:${name}\` first or pass --allow-import=npm:${name}`;
}
