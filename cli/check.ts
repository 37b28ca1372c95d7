/**
 * `pocketci check PIPELINE.ts...`: checks pipeline files the way `pocketci run` does
 * before running them: the static import scan, the type-check against the runner's
 * own copy of the DSL, and the default export.
 *
 * The type-check is a `deno check` subprocess that reads no project configuration
 * and no lockfile (`--no-config --no-lock`, so the project's deno.lock is never
 * written), resolves the DSL through PocketCI's import map, and fetches nothing:
 * `--no-remote --cached-only`, and its HTTP(S) proxy points at a closed port because
 * `--cached-only` alone still lets Deno fetch npm packages. Only packages named with
 * `--allow-import` lift that. Its output is masked and cut to 40 lines / 8 KiB.
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import { walkFlags, writeErr, writeOut } from "./flags.ts";
import { toFileUrl } from "../runner/file_url.ts";
import { closeDenoNetwork, DSL_ENTRY, dslImportMapUrl } from "../runner/import_map.ts";

/** The help text of `pocketci check`. */
export const CHECK_HELP = `Usage: pocketci check [flags] PIPELINE.ts...

Checks pipeline files as \`pocketci run\` does before running one: every import
stays in the pipeline's directory (or names PocketCI's DSL, a node: built-in or a
cached npm: package), the file type-checks ("pocketci", "jsr:@pocketci/pocketci"
and relative imports of mod.ts all resolve to this copy of PocketCI), and its
default export is a pipeline(...) or a function.

Flags:
  --allow-import=SPECS  packages the pipeline may import although Deno has not cached
                        them (npm:NAME or jsr:@SCOPE/NAME, comma-separated); they are fetched
  --allow-read=DIRS     directories the pipeline may also import files from
  -h, --help            show this help

Exit codes: 0 all checks pass, 1 a check failed, 2 bad usage or missing file.`;

/** The most lines and characters of `deno check` output shown. */
export const CHECK_OUTPUT_LIMIT = { lines: 40, chars: 8 * 1024 } as const;

/** Options of {@link checkCommand} and {@link typeCheck}. */
export interface TypeCheckOptions {
  /** An import was allowed with `--allow-import`: let Deno fetch (no `--no-remote`, no closed proxy). */
  readonly fetches?: boolean;
  /** Also check that each file's default export is a pipeline or a function. */
  readonly defaultExport?: boolean;
  /** Masks secrets in the output (applied before the output is cut). */
  readonly mask?: (text: string) => string;
  /** Aborts the subprocess. */
  readonly signal?: AbortSignal;
}

/** The command that type-checks `files`. */
export function checkCommand(
  files: readonly string[],
  options: Pick<TypeCheckOptions, "fetches"> = {},
): { command: string; args: string[]; env: Record<string, string> } {
  // Plain text (the output is parsed and shown cut), without Rust's backtrace noise.
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
  delete env.RUST_BACKTRACE;
  if (!options.fetches) closeDenoNetwork(env);
  return {
    command: Deno.execPath(),
    args: [
      "check",
      "--quiet",
      "--unstable-worker-options",
      "--no-config",
      "--no-lock",
      ...(options.fetches ? [] : ["--no-remote", "--cached-only"]),
      `--import-map=${dslImportMapUrl()}`,
      ...files,
    ],
    env,
  };
}

/** Masks then cuts `deno check` output to {@link CHECK_OUTPUT_LIMIT}, with a marker. */
export function boundCheckOutput(text: string, mask: (text: string) => string = (t) => t): string {
  const lines = mask(text).replace(/\n+$/, "").split("\n");
  const kept: string[] = [];
  let chars = 0;
  let partial = false;
  for (const line of lines) {
    if (kept.length === CHECK_OUTPUT_LIMIT.lines || chars >= CHECK_OUTPUT_LIMIT.chars) break;
    const room = CHECK_OUTPUT_LIMIT.chars - chars;
    if (line.length > room) {
      kept.push(line.slice(0, room));
      partial = true;
      break;
    }
    kept.push(line);
    chars += line.length + 1;
  }
  const cut = lines.length - kept.length + (partial ? 1 : 0);
  if (cut > 0) {
    kept.push(
      `... type-check output cut here (${cut} more line(s); at most ${CHECK_OUTPUT_LIMIT.lines} lines or 8 KiB are shown)`,
    );
  }
  return kept.join("\n");
}

/** How a type-check ended. */
export interface TypeCheckResult {
  /** True when every check passed. */
  readonly ok: boolean;
  /** What failed: a syntax error, type errors, the default export, or the checker itself. */
  readonly failure?: "syntax" | "types" | "default-export" | "checker";
  /** The checker's output, masked and cut (empty when it passed). */
  readonly output: string;
}

/** The one-line error for a pipeline file whose default export is not a pipeline (as `run` says it). */
export async function defaultExportMessage(): Promise<string> {
  const { pipelineFromModule } = await import("../dsl/pipeline.ts");
  return pipelineFromModule({}, "") as string;
}

const probeSource = (files: readonly string[]) =>
  [
    `import type { Pipeline } from ${JSON.stringify(toFileUrl(DSL_ENTRY))};`,
    `type Accepted = Pipeline | ((...args: never[]) => unknown);`,
    ...files.map((file, index) =>
      `import p${index} from ${JSON.stringify(toFileUrl(file))};\n` +
      `export const check${index}: Accepted = p${index};`
    ),
  ].join("\n") + "\n";

/**
 * Type-checks `files` (absolute, already scanned with the import scan); with
 * `defaultExport`, a generated probe module also checks that each default export
 * is a `pipeline(...)` value or a function.
 */
export async function typeCheck(
  files: readonly string[],
  options: TypeCheckOptions = {},
): Promise<TypeCheckResult> {
  let probeDir: string | undefined;
  try {
    const checked = [...files];
    let probe: string | undefined;
    if (options.defaultExport) {
      probeDir = await Deno.makeTempDir({ prefix: "pocketci-check-" });
      probe = `${probeDir}/default_export_probe.ts`;
      await Deno.writeTextFile(probe, probeSource(files));
      checked.push(probe);
    }
    const { command, args, env } = checkCommand(checked, options);
    const result = await new Deno.Command(command, {
      args,
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: options.signal,
    }).output().catch(() => undefined);
    if (result === undefined) return { ok: false, failure: "checker", output: "" };
    if (result.success) return { ok: true, output: "" };
    const decoder = new TextDecoder();
    const text = decoder.decode(result.stdout) + decoder.decode(result.stderr);
    const locations = [...text.matchAll(/^\s+at (file:\/\/\S+?):\d+:\d+/gm)].map((m) => m[1]);
    if (
      probe !== undefined && locations.length > 0 &&
      locations.every((location) => location === toFileUrl(probe!))
    ) {
      return { ok: false, failure: "default-export", output: await defaultExportMessage() };
    }
    const syntax = /SyntaxError|could not be parsed|Expected .* got|Unexpected token|Unterminated/
      .test(text);
    return {
      ok: false,
      failure: syntax ? "syntax" : "types",
      output: boundCheckOutput(text, options.mask),
    };
  } finally {
    if (probeDir !== undefined) await Deno.remove(probeDir, { recursive: true }).catch(() => {});
  }
}

interface CheckFlags {
  files: string[];
  allowImports: string[];
  readRoots: string[];
  help: boolean;
}

function parseCheckFlags(argv: readonly string[]): CheckFlags {
  const flags: CheckFlags = { files: [], allowImports: [], readRoots: [], help: false };
  walkFlags(argv, ({ arg, name, value }) => {
    // Only the --allow-read=DIRS form takes a value: a bare one must not swallow the file.
    switch (name) {
      case "-h":
      case "--help":
        flags.help = true;
        return;
      case "--allow-import":
        flags.allowImports.push(...allowImportFlag(arg));
        return;
      case "--allow-read":
        flags.readRoots.push(...(arg === name ? ["/"] : splitList(value(), "--allow-read")));
        return;
      default:
        if (arg.startsWith("-")) {
          throw new UsageError(`unknown flag ${name}; see \`pocketci check --help\``);
        }
        flags.files.push(arg);
    }
  });
  return flags;
}

/** Splits a comma-separated flag value; an empty one is a usage error. */
export function splitList(text: string, flag: string): string[] {
  const values = text.split(",").map((value) => value.trim()).filter((value) => value !== "");
  if (values.length === 0) throw new UsageError(`${flag} needs a value, e.g. ${flag}=npm:zod`);
  return values;
}

/**
 * The packages of one `--allow-import=SPECS` argument: `npm:NAME` or `jsr:@SCOPE/NAME`,
 * no version (shared by `run` and `check`).
 */
export function allowImportFlag(arg: string): string[] {
  const eq = arg.indexOf("=");
  if (eq === -1) throw new UsageError("--allow-import needs packages: --allow-import=npm:zod");
  const values = splitList(arg.slice(eq + 1), "--allow-import");
  for (const value of values) {
    if (!/^(npm:(@[^/@\s]+\/)?[^/@\s]+|jsr:@[^/@\s]+\/[^/@\s]+)$/.test(value)) {
      throw new UsageError(
        `--allow-import takes package names like npm:zod or jsr:@std/path (no version), not "${value}"`,
      );
    }
  }
  return values;
}

/**
 * Runs the static import scan on `file` (absolute) for `run` and `check`; a refused
 * import becomes a {@link UsageError} (one line naming file, line, specifier and rule).
 */
export async function scanPipeline(
  file: string,
  options: { allowImports: readonly string[]; readRoots: readonly string[] },
): Promise<import("../runner/import_scan.ts").ImportScan> {
  const { ImportRefusedError, scanImports } = await import("../runner/import_scan.ts");
  try {
    return await scanImports(file, options);
  } catch (error) {
    if (error instanceof ImportRefusedError) throw new UsageError(error.message);
    throw error;
  }
}

/** Runs `pocketci check`. */
export async function main(args: string[]): Promise<number> {
  const flags = parseCheckFlags(args);
  if (flags.help) {
    writeOut(CHECK_HELP);
    return 0;
  }
  if (flags.files.length === 0) {
    throw new UsageError("missing the pipeline file: pocketci check PIPELINE.ts");
  }
  const allowImports = flags.allowImports;
  const readRoots = flags.readRoots.map((root) =>
    root.startsWith("/") ? root : `${Deno.cwd()}/${root}`
  );
  const files: string[] = [];
  for (const file of flags.files) {
    try {
      files.push(await Deno.realPath(file));
    } catch {
      throw new UsageError(`pipeline file ${file} does not exist`);
    }
  }
  let fetches = false;
  for (const file of files) {
    try {
      fetches = (await scanPipeline(file, { allowImports, readRoots })).fetches || fetches;
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      writeErr(`pocketci check: ${error.message}`);
      return 1;
    }
  }
  // Ctrl-C stops deno check and still removes the default-export probe's temp directory.
  const abort = new AbortController();
  let signalled: Deno.Signal | undefined;
  const stop = (signal: Deno.Signal) => () => {
    signalled ??= signal;
    abort.abort();
  };
  const onInt = stop("SIGINT");
  const onTerm = stop("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  let result: TypeCheckResult;
  try {
    result = await typeCheck(files, { fetches, defaultExport: true, signal: abort.signal });
  } finally {
    Deno.removeSignalListener("SIGINT", onInt);
    Deno.removeSignalListener("SIGTERM", onTerm);
  }
  if (signalled !== undefined) return signalled === "SIGINT" ? 130 : 143;
  if (result.ok) return 0;
  if (result.failure === "default-export") {
    writeErr(`pocketci check: ${result.output}`);
  } else {
    if (result.output !== "") writeErr(result.output);
    writeErr(
      result.failure === "syntax"
        ? "pocketci check: the pipeline has a syntax error (above); fix it"
        : result.failure === "checker"
        ? "pocketci check: cannot start deno check"
        : "pocketci check: the pipeline does not type-check (errors above)",
    );
  }
  return 1;
}
