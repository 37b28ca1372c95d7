/**
 * `pocketci run PIPELINE.ts [flags] [-- args]`: runs a pipeline.
 *
 * By default the runner re-executes itself as a child process holding only the
 * driver's permissions, what the runner needs (read of the pipeline directory, read
 * and write of the state directory, write of the pipeline directory for `exportTo`)
 * and what the user grants the pipeline with `--allow-*`. The resolved driver
 * configuration and secret values reach the child on its standard input.
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import { allowImportFlag, scanPipeline, typeCheck, type TypeCheckResult } from "./check.ts";
import { driverFlag, durationFlag, stateDirFlag, walkFlags, writeErr, writeOut } from "./flags.ts";
import { EVENT_VERSION } from "../runner/events.ts";
import type { LaunchConfig } from "../runner/launch.ts";
import {
  absoluteGrants,
  emptyGrants,
  grantsAsNeeds,
  parseAllowFlag,
} from "../runner/permission_flags.ts";
import { permissionFlags } from "../drivers/permissions.ts";
import type { PermissionNeed } from "../drivers/contract.ts";
import type { ResolvedDsn } from "../dsn/types.ts";
import { fromFileUrl } from "../runner/file_url.ts";
import { PIPELINE_ENV_NAMES, SOCKET_NAME } from "../runner/pipeline_names.ts";

/** The help text of `pocketci run`. */
export const RUN_HELP = `Usage: pocketci run PIPELINE.ts [flags] [-- args...]

Flags:
  --driver DSN          driver string (default: $POCKETCI_DRIVER, else native)
  --service-driver DSN  start the run's services on this driver instead (docker, local engine)
                        while tasks stay on --driver=native; they reach a service at
                        127.0.0.1:svc.hostPort(port)
  --json                write versioned NDJSON events to stdout instead of text
  --timeout DURATION    hard deadline for the whole run, grace included (exit 124), e.g. 10m
  --grace DURATION      time stopped tasks get between SIGTERM and SIGKILL (default 10s)
  --parallelism N       at most N tasks and sandbox calls at once
  --secret NAME         allow secret("NAME"), read from the environment variable NAME
  --secret-file FILE    allow the secrets in FILE (NAME=value lines)
  --allow-short-secrets allow secrets shorter than 6 characters (refused by default: masking
                        them hides ordinary text); they are masked, with a warning
  --state-dir DIR       state directory (default: $POCKETCI_STATE_DIR, $XDG_STATE_HOME/pocketci
                        or ~/.local/state/pocketci)
  --namespace NAME      the namespace (caches, labels), overriding the driver string's and the
                        default (derived from the git remote; see \`pocketci dsn --help\`)
  --allow-read[=PATHS], --allow-write[=PATHS], --allow-net[=HOSTS], --allow-env[=NAMES],
  --allow-run[=PROGRAMS], --allow-ffi, --allow-sys, -A
                        grant pipeline code these Deno permissions (default: none but
                        reading its own directory)
  --allow-import=SPECS  packages pipeline code may import although Deno has not cached them
                        (npm:NAME or jsr:@SCOPE/NAME, comma-separated); they are fetched
  --allow-privileged    let .privileged() tasks and sandboxes run (root on the engine's host)
  --pipeline-memory SIZE  heap limit of the pipeline process (default 2GB), e.g. 512MB
  --timestamps          start every line of the text output with its UTC time
  --no-check            skip type-checking the pipeline before running it
  --in-process          run in this process instead of a child with narrowed permissions
  -h, --help            show this help

Exit codes: 0 success, 1 pipeline failed, 2 nothing ran, 124 --timeout, 130 SIGINT, 143 SIGTERM.`;

interface RunFlags {
  pipeline?: string;
  driver?: string;
  serviceDriver?: string;
  json: boolean;
  timeout?: string;
  grace?: string;
  parallelism?: number;
  secrets: string[];
  secretFiles: string[];
  allowShortSecrets: boolean;
  stateDir?: string;
  namespace?: string;
  inProcess: boolean;
  noCheck: boolean;
  timestamps: boolean;
  pipelineMemoryMb?: number;
  allowPrivileged: boolean;
  allowImports: string[];
  grants: ReturnType<typeof emptyGrants>;
  args: string[];
  help: boolean;
}

/** Parses the flags of `pocketci run`. */
export function parseRunFlags(argv: readonly string[]): RunFlags {
  const flags: RunFlags = {
    json: false,
    secrets: [],
    secretFiles: [],
    allowShortSecrets: false,
    inProcess: false,
    noCheck: false,
    timestamps: false,
    allowPrivileged: false,
    allowImports: [],
    grants: emptyGrants(),
    args: [],
    help: false,
  };
  walkFlags(argv, ({ arg, name, value, rest }) => {
    if (arg === "--") {
      flags.args = rest();
      return "stop";
    }
    if (parseAllowFlag(arg, flags.grants)) return;
    switch (name) {
      case "-h":
      case "--help":
        flags.help = true;
        break;
      case "--driver":
        flags.driver = value();
        break;
      case "--service-driver":
        flags.serviceDriver = value();
        break;
      case "--json":
        flags.json = true;
        break;
      case "--timeout":
        flags.timeout = value();
        break;
      case "--grace":
        flags.grace = value();
        break;
      case "--parallelism": {
        const text = value();
        const n = Number(text);
        if (!Number.isInteger(n) || n < 1) {
          throw new UsageError(`--parallelism must be a whole number of at least 1, not "${text}"`);
        }
        flags.parallelism = n;
        break;
      }
      case "--secret":
        flags.secrets.push(value());
        break;
      case "--secret-file":
        flags.secretFiles.push(value());
        break;
      case "--allow-short-secrets":
        if (arg !== name) {
          throw new UsageError(`--allow-short-secrets takes no value, not "${arg}"`);
        }
        flags.allowShortSecrets = true;
        break;
      case "--state-dir":
        flags.stateDir = value();
        break;
      case "--namespace":
        flags.namespace = value();
        break;
      case "--in-process":
        flags.inProcess = true;
        break;
      case "--no-check":
        flags.noCheck = true;
        break;
      case "--timestamps":
        if (arg !== name) throw new UsageError(`--timestamps takes no value, not "${arg}"`);
        flags.timestamps = true;
        break;
      case "--pipeline-memory":
        flags.pipelineMemoryMb = pipelineMemoryFlag(value());
        break;
      case "--allow-import":
        flags.allowImports.push(...allowImportFlag(arg));
        break;
      case "--allow-privileged":
        if (arg !== name) throw new UsageError(`--allow-privileged takes no value, not "${arg}"`);
        flags.allowPrivileged = true;
        break;
      default:
        if (arg.startsWith("-")) {
          throw new UsageError(`unknown flag ${name}; see \`pocketci run --help\``);
        }
        if (flags.pipeline !== undefined) {
          throw new UsageError(
            `unexpected argument "${arg}"; pass pipeline arguments after \`--\``,
          );
        }
        flags.pipeline = arg;
    }
  });
  return flags;
}

/** `--pipeline-memory`: `512MB`, `2GB`, `768` (MB) to whole MB, at least 32. */
export function pipelineMemoryFlag(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(m|mb|mib|g|gb|gib)?$/i.exec(text.trim());
  const mb = match === null
    ? NaN
    : Math.floor(Number(match[1]) * (/^g/i.test(match[2] ?? "") ? 1024 : 1));
  if (!(mb >= 32)) {
    throw new UsageError(
      `--pipeline-memory must be a size of at least 32MB such as 512MB or 2GB, not "${text}"`,
    );
  }
  return mb;
}

/** Builds the launch configuration from flags and the environment (throws UsageError). */
export async function launchConfig(
  flags: RunFlags,
  cwd: string = Deno.cwd(),
): Promise<LaunchConfig> {
  if (flags.pipeline === undefined) {
    throw new UsageError("missing the pipeline file: pocketci run PIPELINE.ts");
  }
  let pipelinePath: string;
  try {
    pipelinePath = await Deno.realPath(flags.pipeline);
    if (!(await Deno.stat(pipelinePath)).isFile) throw new Error("not a file");
  } catch {
    throw new UsageError(
      `pipeline file ${flags.pipeline} does not exist; pass the path of a .ts file`,
    );
  }
  // Before Deno loads or type-checks anything: static imports are read unchecked.
  const permissions = absoluteGrants(flags.grants, cwd);
  const imports = await scanPipeline(pipelinePath, {
    allowImports: flags.allowImports,
    readRoots: permissions.read === true ? ["/"] : permissions.read || [],
  });
  const { parseSecretFile, secretsFromEnv, shortSecrets } = await import("../runner/secrets.ts");
  const { newRunId } = await import("../dsn/run_id.ts");
  const env = Deno.env.toObject();
  const { chooseDriver } = await import("../dsn/driver_choice.ts");
  const { DsnError } = await import("../dsn/types.ts");
  let choice;
  try {
    choice = chooseDriver(flags.driver, env);
  } catch (error) {
    if (error instanceof DsnError) throw new UsageError(error.message);
    throw error;
  }
  const driverText = choice.text;
  let dsn: ResolvedDsn;
  let dsnSecrets: string[] = [];
  if (driverText === "native") {
    // The plain default needs no parsing; skipping the DSN layer keeps start-up lean.
    dsn = await plainNativeDsn(pipelinePath, cwd);
  } else {
    const { secretValues } = await import("../dsn/mod.ts");
    dsn = await driverFlag(driverText, { env, pipelinePath, cwd }, choice.source);
    dsnSecrets = secretValues(dsn);
    // Refused here, before the runner child starts: its --allow-run of the driver's missing
    // programs (qemu-img, ...) made Deno print "Failed to resolve" lines.
    const { isImplemented, notImplementedMessage } = await import("../drivers/registry.ts");
    if (!isImplemented(dsn.driver)) throw new UsageError(notImplementedMessage(dsn.driver));
  }
  if (flags.namespace !== undefined) {
    const { checkNamespace } = await import("../dsn/parse.ts");
    try {
      checkNamespace(flags.namespace);
    } catch (error) {
      throw new UsageError(`--namespace "${flags.namespace}": ${(error as Error).message}`);
    }
    if (flags.namespace === "") {
      throw new UsageError("--namespace needs a name, e.g. --namespace=my-repo");
    }
    dsn = { ...dsn, namespace: flags.namespace, namespaceFromDsn: true };
  }
  let serviceDsn: ResolvedDsn | undefined;
  if (flags.serviceDriver !== undefined) {
    const { serviceDriverFlag } = await import("./service_driver.ts");
    const { secretValues } = await import("../dsn/mod.ts");
    serviceDsn = await serviceDriverFlag(flags.serviceDriver, dsn, { env, pipelinePath, cwd });
    dsnSecrets = [...dsnSecrets, ...secretValues(serviceDsn)];
  }
  const timeoutMs = flags.timeout === undefined
    ? undefined
    : await durationFlag("--timeout", flags.timeout);
  const graceMs = flags.grace === undefined
    ? undefined
    : await durationFlag("--grace", flags.grace);
  const secrets = new Map<string, string>();
  try {
    for (const file of flags.secretFiles) {
      const text = await Deno.readTextFile(file).catch(() => {
        throw new Error(`--secret-file ${file}: cannot read the file`);
      });
      for (const [name, value] of parseSecretFile(text, file)) secrets.set(name, value);
    }
    for (const [name, value] of secretsFromEnv(flags.secrets, (name) => env[name])) {
      secrets.set(name, value);
    }
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  for (const problem of shortSecrets(secrets, dsnSecrets)) {
    if (!flags.allowShortSecrets) {
      throw new UsageError(
        `${problem} (it would hide ordinary text); use a longer secret, or pass --allow-short-secrets`,
      );
    }
    writeErr(`pocketci run: warning: ${problem}; it is masked, and may hide ordinary text too`);
  }
  const stateDir = await stateDirFlag(flags.stateDir, env);
  const { autoGcDisabled } = await import("../runner/auto_gc.ts");
  const { detectFolding } = await import("../runner/folding.ts");
  const folding = flags.json ? undefined : detectFolding(env);
  return {
    pipelinePath,
    dsn,
    ...(serviceDsn === undefined ? {} : { serviceDsn }),
    dsnSecrets,
    secrets: [...secrets],
    runId: newRunId(),
    args: flags.args,
    parallelism: flags.parallelism,
    timeoutMs,
    graceMs,
    stateDir: stateDir.startsWith("/") ? stateDir : `${cwd}/${stateDir}`,
    permissions,
    pipelineMemoryMb: flags.pipelineMemoryMb,
    sourceFiles: imports.localFiles,
    importsFetch: imports.fetches,
    json: flags.json,
    allowPrivileged: flags.allowPrivileged,
    autoGc: !autoGcDisabled(env),
    ...(flags.timestamps ? { timestamps: true } : {}),
    ...(folding === undefined ? {} : { folding }),
    colour: !flags.json && Deno.stdout.isTerminal() && env.NO_COLOR === undefined,
  };
}

/**
 * What the DSN layer resolves the plain string `native` to, for a pipeline at
 * `pipelinePath` (absolute): the namespace is `defaultNamespace`'s (from the git remote
 * or repository, else the path).
 */
export async function plainNativeDsn(pipelinePath: string, cwd: string): Promise<ResolvedDsn> {
  const { defaultNamespace } = await import("../dsn/namespace.ts");
  return {
    driver: "native",
    namespace: defaultNamespace(pipelinePath, cwd),
    namespaceFromDsn: false,
    params: {},
    config: {},
    warnings: [],
  };
}

/** The Deno flags of the runner child process for `config`. */
export function childPermissionFlags(
  config: LaunchConfig,
  driverNeeds: readonly PermissionNeed[],
): string[] {
  const pipelineDir = config.pipelinePath.slice(0, config.pipelinePath.lastIndexOf("/")) || "/";
  const sourceDir = fromFileUrl(new URL("..", import.meta.url)).replace(/\/$/, "");
  const runnerNeeds: PermissionNeed[] = [
    { permission: "read", values: [sourceDir], reason: "loads PocketCI's own modules" },
    { permission: "read", values: [pipelineDir], reason: "loads the pipeline and seeds volumes" },
    {
      permission: "write",
      values: [pipelineDir],
      reason: "exportTo writes into the pipeline directory",
    },
    { permission: "read", values: [config.stateDir], reason: "reads the state directory" },
    { permission: "write", values: [config.stateDir], reason: "records resources and keeps logs" },
  ];
  if (config.privateDir !== undefined) {
    const socket = `${config.privateDir}/${SOCKET_NAME}`;
    const why = "talks to the pipeline process over a socket in its private directory";
    runnerNeeds.push(
      { permission: "read", values: [config.privateDir], reason: why },
      { permission: "write", values: [config.privateDir], reason: why },
      { permission: "net", values: [`unix:${socket}`], reason: why },
    );
  }
  runnerNeeds.push(
    { permission: "run", values: [Deno.execPath()], reason: "starts the pipeline process" },
    { permission: "read", values: [Deno.execPath()], reason: "starts the pipeline process" },
    {
      permission: "env",
      values: [...PIPELINE_ENV_NAMES],
      reason: "passes Deno's cache location to the pipeline process",
    },
  );
  const writeGrant = config.permissions.write;
  if (writeGrant !== false) {
    runnerNeeds.push({
      permission: "read",
      values: writeGrant === true ? true : [...writeGrant],
      reason:
        "exportTo follows symlinks in a directory granted with --allow-write to stay inside it",
    });
  }
  return permissionFlags([...driverNeeds, ...runnerNeeds, ...grantsAsNeeds(config.permissions)]);
}

/**
 * What the run's drivers need: the driver's permissions, and with `--service-driver` the
 * service driver's too (the runner child holds both drivers: the union).
 */
export async function driverNeeds(
  config: Pick<LaunchConfig, "dsn" | "serviceDsn">,
): Promise<PermissionNeed[]> {
  const { getDriverFactory } = await import("../drivers/registry.ts");
  const needs = [...(await getDriverFactory(config.dsn.driver)).permissions(config.dsn.config)];
  if (config.serviceDsn !== undefined) {
    const serviceFactory = await getDriverFactory(config.serviceDsn.driver);
    needs.push(...serviceFactory.permissions(config.serviceDsn.config));
  }
  return needs;
}

async function runChild(
  config: LaunchConfig,
  checked: Promise<boolean>,
  notChecked: () => void,
  endedEarly: (signal: Deno.Signal) => void,
  stopCheck: () => void,
): Promise<number> {
  const flags = childPermissionFlags(config, await driverNeeds(config));
  const sourceDir = new URL("..", import.meta.url);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-worker-options",
      "--no-prompt",
      `--config=${fromFileUrl(new URL("deno.json", sourceDir))}`,
      ...flags,
      fromFileUrl(new URL("runner/child.ts", sourceDir)),
    ],
    stdin: "piped",
    stdout: "inherit",
    stderr: "inherit",
    detached: true,
  }).spawn();
  // Until the child has its configuration, a signal stops the start-up here: the
  // type-check is aborted and the idle child killed.
  let configured = false;
  let early: Deno.Signal | undefined;
  let interruptStartup = () => {};
  const interrupted = new Promise<false>((resolve) => interruptStartup = () => resolve(false));
  const forward = (signal: Deno.Signal) => () => {
    if (!configured) {
      early ??= signal;
      interruptStartup();
      return;
    }
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  };
  const onInt = forward("SIGINT");
  const onTerm = forward("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  try {
    const ok = await Promise.race([checked, interrupted]);
    if (early !== undefined || !ok) {
      stopCheck();
      child.kill("SIGKILL");
      await child.status;
      if (early !== undefined) {
        endedEarly(early);
        return 128 + signalNumber(early);
      }
      notChecked();
      return 2;
    }
    configured = true;
    const { processStartTime } = await import("../runner/state.ts");
    const startTime = await processStartTime(child.pid);
    const writer = child.stdin.getWriter();
    await writer.write(
      new TextEncoder().encode(
        JSON.stringify({ ...config, process: { pid: child.pid, startTime } }) + "\n",
      ),
    );
    // stdin stays open while this process lives: its end tells the child the launcher died.
    const status = await child.status;
    await writer.close().catch(() => {});
    return status.signal ? 128 + signalNumber(status.signal) : status.code;
  } finally {
    Deno.removeSignalListener("SIGINT", onInt);
    Deno.removeSignalListener("SIGTERM", onTerm);
  }
}

/** What the last failed type-check found (a syntax error is not helped by --no-check). */
let checkFailure: TypeCheckResult["failure"];

async function typeChecks(config: LaunchConfig, signal: AbortSignal): Promise<boolean> {
  const { Masker } = await import("../runner/mask.ts");
  const masker = new Masker([...config.secrets.map(([, value]) => value), ...config.dsnSecrets]);
  const result = await typeCheck([config.pipelinePath], {
    fetches: config.importsFetch,
    mask: (text) => masker.mask(text),
    signal,
  });
  if (!result.ok && result.output !== "") writeErr(result.output);
  checkFailure = result.failure;
  return result.ok;
}

function signalNumber(signal: Deno.Signal): number {
  const numbers: Partial<Record<Deno.Signal, number>> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal] ?? 1;
}

/** Whether `--json` was given (before `--`), known even when other flags are bad. */
function jsonRequested(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).includes("--json");
}

/** How a run ended before the runner started it: written as a `run.end` event with `--json`. */
type EndBeforeRun = (status: "error" | "cancelled", exitCode: number, error: string) => void;

/** Runs `pocketci run`. */
export async function main(args: string[]): Promise<number> {
  const json = jsonRequested(args);
  const started = performance.now();
  const endBeforeRun: EndBeforeRun = (status, exitCode, error) => {
    if (!json) return;
    writeOut(JSON.stringify({
      v: EVENT_VERSION,
      time: new Date().toISOString(),
      type: "run.end",
      status,
      exitCode,
      durationMs: Math.round(performance.now() - started),
      error,
      leftovers: [],
    }));
  };
  try {
    return await runCommand(args, endBeforeRun);
  } catch (error) {
    // main.ts prints the usage error on stderr and exits 2.
    if (error instanceof UsageError) endBeforeRun("error", 2, error.message);
    throw error;
  }
}

async function runCommand(args: string[], endBeforeRun: EndBeforeRun): Promise<number> {
  const flags = parseRunFlags(args);
  if (flags.help) {
    Deno.stdout.writeSync(new TextEncoder().encode(RUN_HELP + "\n"));
    return 0;
  }
  const config = await launchConfig(flags);
  // The type-check runs while the runner child starts; the child gets its
  // configuration (and so starts running) only once the check passed.
  const check = new AbortController();
  const checked = flags.noCheck ? Promise.resolve(true) : typeChecks(config, check.signal);
  const notChecked = () => {
    // --no-check does not help a file that does not parse, so it is not suggested then.
    const problem = checkFailure === "syntax"
      ? "has a syntax error"
      : checkFailure === "checker"
      ? "could not be type-checked (deno check did not start)"
      : "does not type-check";
    const fix = checkFailure === "syntax" ? "fix it" : "fix it or pass --no-check";
    writeErr(`pocketci run: ${flags.pipeline} ${problem} (errors above); ${fix}`);
    endBeforeRun("error", 2, `${flags.pipeline} ${problem} (errors on stderr); ${fix}`);
  };
  const interrupted = (signal: Deno.Signal) =>
    endBeforeRun("cancelled", 128 + signalNumber(signal), `the run was interrupted by ${signal}`);
  if (flags.inProcess) {
    if (!(await checked)) {
      notChecked();
      return 2;
    }
    const { launch } = await import("../runner/launch.ts");
    const { processStartTime } = await import("../runner/state.ts");
    const outcome = await launch({
      ...config,
      process: { pid: Deno.pid, startTime: await processStartTime(Deno.pid) },
    });
    return outcome.exitCode;
  }
  // The pipeline process's socket lives in a private directory made here, where the
  // child's permissions can name it; the child removes it, and so does this process.
  const privateDir = await Deno.makeTempDir({ prefix: "pocketci-" });
  try {
    return await runChild(
      { ...config, privateDir },
      checked,
      notChecked,
      interrupted,
      () => check.abort(),
    );
  } catch (error) {
    const message = `cannot start the runner: ${(error as Error).message.split("\n")[0]}`;
    writeErr(`pocketci run: ${message}`);
    endBeforeRun("error", 2, message);
    return 2;
  } finally {
    await Deno.remove(privateDir, { recursive: true }).catch(() => {});
  }
}
