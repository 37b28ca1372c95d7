/**
 * Runs a pipeline in this process from a fully resolved {@link LaunchConfig}:
 * reporters on stdout/stderr, SIGINT/SIGTERM wired to the run. Used directly by
 * `pocketci run --in-process` and by the narrowed runner child process.
 *
 * @module
 */

import type { ResolvedDsn } from "../dsn/types.ts";
import type { Reporter } from "./events.ts";
import { checkFolding, type FoldingStyle } from "./folding.ts";
import type { PipelinePermissions } from "./pipeline_process.ts";
import { JsonReporter, type Output, TextReporter } from "./reporters.ts";
import { PipelineRun, type RunOutcome } from "./run.ts";
import type { ProcessIdentity } from "./state.ts";
import { writeTextSync } from "./write_text.ts";

/** Everything the runner needs, as plain data (it crosses a pipe to the child). */
export interface LaunchConfig {
  /** Absolute pipeline path. */
  readonly pipelinePath: string;
  /** Resolved driver configuration. */
  readonly dsn: ResolvedDsn;
  /** `--service-driver`: the resolved configuration of the driver services start on. */
  readonly serviceDsn?: ResolvedDsn;
  /** Secret values from the DSN, to mask. */
  readonly dsnSecrets: readonly string[];
  /** Allowed secrets as `[name, value]` pairs. */
  readonly secrets: readonly (readonly [string, string])[];
  /** Run ID. */
  readonly runId: string;
  /** Arguments after `--`. */
  readonly args: readonly string[];
  /** `--parallelism`. */
  readonly parallelism?: number;
  /** `--timeout` in ms. */
  readonly timeoutMs?: number;
  /** State directory. */
  readonly stateDir: string;
  /** Grants for pipeline code. */
  readonly permissions: PipelinePermissions;
  /** NDJSON output. */
  readonly json: boolean;
  /** ANSI colour in text output. */
  readonly colour: boolean;
  /** The runner process. */
  readonly process?: ProcessIdentity;
  /** Grace period in ms. */
  readonly graceMs?: number;
  /** `--allow-privileged`. */
  readonly allowPrivileged?: boolean;
  /** Real paths of the pipeline's own modules (the import scan's): exportTo never overwrites them. */
  readonly sourceFiles?: readonly string[];
  /** An import was allowed with `--allow-import`, so Deno may fetch it. */
  readonly importsFetch?: boolean;
  /** `--pipeline-memory` in MB: the pipeline process's heap limit. */
  readonly pipelineMemoryMb?: number;
  /** A private (0700) directory for the pipeline process's socket (removed when the run ends). */
  readonly privateDir?: string;
  /** Run the automatic gc after the run (false when POCKETCI_NO_AUTO_GC is set). */
  readonly autoGc?: boolean;
  /** `--timestamps`: text output lines start with the time. */
  readonly timestamps?: boolean;
  /**
   * The CI system `pocketci run` runs in, for folding groups (detected by the launcher: the
   * runner child's environment is narrowed).
   */
  readonly folding?: FoldingStyle;
}

/** stdout/stderr of this process. */
export const PROCESS_OUTPUT: Output = {
  stdout: (text) => writeTextSync(Deno.stdout, text),
  stderr: (text) => writeTextSync(Deno.stderr, text),
};

/** What else stops a launched run. */
export interface LaunchOptions {
  /**
   * Settles when the process that started this one is gone (the runner child's stdin ended):
   * the run is then stopped as on SIGTERM.
   */
  readonly parentGone?: Promise<void>;
}

/** Runs the pipeline here, handling SIGINT and SIGTERM, and returns the outcome. */
export async function launch(
  config: LaunchConfig,
  output: Output = PROCESS_OUTPUT,
  options: LaunchOptions = {},
): Promise<RunOutcome> {
  const reporter: Reporter = config.json ? new JsonReporter(output) : new TextReporter(output, {
    colour: config.colour,
    driver: config.dsn.driver,
    timestamps: config.timestamps === true,
    folding: checkFolding(config.folding),
  });
  const run = new PipelineRun({
    pipelinePath: config.pipelinePath,
    dsn: config.dsn,
    ...(config.serviceDsn === undefined ? {} : { serviceDsn: config.serviceDsn }),
    runId: config.runId,
    args: config.args,
    secrets: new Map(config.secrets),
    parallelism: config.parallelism,
    timeoutMs: config.timeoutMs,
    stateDir: config.stateDir,
    permissions: config.permissions,
    reporters: [reporter],
    process: config.process,
    graceMs: config.graceMs,
    sourceFiles: config.sourceFiles,
    allowPrivileged: config.allowPrivileged,
    importsFetch: config.importsFetch,
    pipelineMemoryMb: config.pipelineMemoryMb,
    privateDir: config.privateDir,
    autoGc: config.autoGc,
  }, config.dsnSecrets);
  const onInt = () => run.interrupt("SIGINT");
  const onTerm = () => run.interrupt("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  let running = true;
  options.parentGone?.then(() => {
    if (running) run.interrupt("SIGTERM", "the launcher (pocketci run) is gone");
  }, () => {});
  try {
    return await run.start();
  } finally {
    running = false;
    Deno.removeSignalListener("SIGINT", onInt);
    Deno.removeSignalListener("SIGTERM", onTerm);
  }
}
