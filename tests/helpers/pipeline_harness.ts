/**
 * Runs pipeline source text through the real runner (programmatic API, in this
 * process, with the pipeline in its own process) and collects what a user would see.
 *
 * @module
 */

import type { DriverFactory } from "../../drivers/contract.ts";
import type { ResolvedDsn } from "../../dsn/types.ts";
import type { Reporter, RunEvent } from "../../runner/events.ts";
import { NO_PERMISSIONS, type PipelinePermissions } from "../../runner/pipeline_process.ts";
import { TextReporter } from "../../runner/reporters.ts";
import { PipelineRun, type RunOutcome } from "../../runner/run.ts";

/** Options for {@link runPipelineSource}. */
export interface HarnessOptions {
  /** Driver string (default `native`). */
  readonly driver?: string;
  /** `--service-driver` (checked as the CLI checks it). */
  readonly serviceDriver?: string;
  /** Use this factory instead of the registry. */
  readonly factory?: DriverFactory;
  /** Extra files to write next to the pipeline (path → content). */
  readonly files?: Readonly<Record<string, string>>;
  /** Allowed secrets. */
  readonly secrets?: Readonly<Record<string, string>>;
  /** `--parallelism`. */
  readonly parallelism?: number;
  /** `--timeout` in ms. */
  readonly timeoutMs?: number;
  /** Arguments after `--`. */
  readonly args?: readonly string[];
  /** Grants for pipeline code. */
  readonly permissions?: PipelinePermissions;
  /** An existing state directory (default: a fresh one inside the temp dir). */
  readonly stateDir?: string;
  /** An existing directory to put the pipeline in (default: a fresh temp dir). */
  readonly dir?: string;
  /** Grace period in ms. */
  readonly graceMs?: number;
  /** The pipeline process's heap limit in MB. */
  readonly pipelineMemoryMb?: number;
  /** Called with the run once it started (to interrupt it). */
  readonly onRun?: (run: PipelineRun) => void;
  /** Called with every event and the run (to interrupt it at the right moment). */
  readonly onEvent?: (event: RunEvent, run: PipelineRun) => void;
}

/** What a harness run produced. */
export interface HarnessResult {
  /** The run's outcome. */
  readonly outcome: RunOutcome;
  /** Every event, in order. */
  readonly events: readonly RunEvent[];
  /** The text reporter's stdout. */
  readonly stdout: string;
  /** The text reporter's stderr. */
  readonly stderr: string;
  /** The pipeline's directory. */
  readonly dir: string;
  /** The state directory. */
  readonly stateDir: string;
  /** Messages the pipeline logged with console.*. */
  readonly logs: readonly string[];
}

/** Resolves a driver string with the DSN layer. */
export async function resolveDriver(driver: string, pipelinePath: string): Promise<ResolvedDsn> {
  const { resolveDsn } = await import("../../dsn/mod.ts");
  return resolveDsn(driver, { pipelinePath, cwd: Deno.cwd() });
}

/** Writes `source` as `pipeline.ts` in a temp directory and runs it. */
export async function runPipelineSource(
  source: string,
  options: HarnessOptions = {},
): Promise<HarnessResult> {
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "pocketci-pipeline-" });
  const stateDir = options.stateDir ?? `${dir}/.state`;
  for (const [path, content] of Object.entries(options.files ?? {})) {
    const full = `${dir}/${path}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, content);
  }
  const pipelinePath = `${dir}/pipeline.ts`;
  await Deno.writeTextFile(pipelinePath, source);
  const dsn = await resolveDriver(options.driver ?? "native", pipelinePath);
  const { secretValues } = await import("../../dsn/mod.ts");
  const serviceDsn = options.serviceDriver === undefined
    ? undefined
    : await (await import("../../cli/service_driver.ts")).serviceDriverFlag(
      options.serviceDriver,
      dsn,
      { pipelinePath, cwd: Deno.cwd() },
    );
  const events: RunEvent[] = [];
  let stdout = "";
  let stderr = "";
  const holder: { run?: PipelineRun } = {};
  const collector: Reporter = {
    event: (event) => {
      events.push(event);
      if (holder.run !== undefined) options.onEvent?.(event, holder.run);
    },
  };
  const text = new TextReporter({
    stdout: (chunk) => stdout += chunk,
    stderr: (chunk) => stderr += chunk,
  }, { colour: false, driver: dsn.driver });
  const run = new PipelineRun({
    pipelinePath,
    dsn,
    ...(serviceDsn === undefined ? {} : { serviceDsn }),
    factory: options.factory,
    runId: `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`,
    args: options.args ?? [],
    secrets: new Map(Object.entries(options.secrets ?? {})),
    parallelism: options.parallelism,
    timeoutMs: options.timeoutMs,
    stateDir,
    permissions: options.permissions ?? NO_PERMISSIONS,
    reporters: [collector, text],
    graceMs: options.graceMs,
    pipelineMemoryMb: options.pipelineMemoryMb,
  }, secretValues(dsn));
  holder.run = run;
  options.onRun?.(run);
  const outcome = await run.start();
  const logs = events.flatMap((event) => event.type === "log" ? [event.message] : []);
  return { outcome, events, stdout, stderr, dir, stateDir, logs };
}

/** The run ID from a harness result's `run.start` event (throws when there is none). */
export function runIdOf(result: { readonly events: readonly RunEvent[] }): string {
  const start = result.events.find((event) => event.type === "run.start");
  if (start?.type !== "run.start") throw new Error("the run has no run.start event");
  return start.runId;
}

/** The `task.end` events, by task name (last one wins). */
export function endsByName(
  events: readonly RunEvent[],
): Map<string, Extract<RunEvent, { type: "task.end" }>> {
  const ends = new Map<string, Extract<RunEvent, { type: "task.end" }>>();
  for (const event of events) if (event.type === "task.end") ends.set(event.name, event);
  return ends;
}

/** Parses the JSON the pipeline printed with `console.log(JSON.stringify(...))` after a marker. */
export function loggedJson<T>(logs: readonly string[], marker: string): T {
  const line = logs.find((message) => message.startsWith(marker + " "));
  if (line === undefined) {
    throw new Error(`the pipeline did not log "${marker}"; logs: ${logs.join(" | ")}`);
  }
  return JSON.parse(line.slice(marker.length + 1)) as T;
}

/** The directory holding mod.ts, as a file URL string ending in a slash. */
export const SOURCE_ROOT: string = new URL("../../", import.meta.url).href;
