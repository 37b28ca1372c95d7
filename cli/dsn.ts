/**
 * `pocketci dsn [DSN] [--json] [--pipeline FILE]`: explains a driver string — the driver,
 * the namespace, the parameters as given and the resolved configuration with where each
 * value came from. Secrets are shown as `***`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "./errors.ts";
import {
  describeDrivers,
  driverStringFrom,
  DsnError,
  type ParameterDescription,
  redactConfig,
  type ResolvedDsn,
  resolveDsn,
  shownNamespace,
} from "../dsn/mod.ts";
import { writeOut } from "./flags.ts";
import { defaultNamespaceRule } from "../dsn/namespace.ts";

/** The help text of `pocketci dsn`. */
export const DSN_HELP: string = [
  "Usage: pocketci dsn [DSN] [--json] [--pipeline FILE]",
  "",
  "Explains a driver string: its driver, namespace, parameters and the resolved",
  "configuration (DSN parameter, else environment variable, else default).",
  "Without DSN it explains the driver `pocketci run` would use: $POCKETCI_DRIVER, else native.",
  "",
  "Forms:",
  "  NAME                              e.g. docker",
  "  NAME://NAMESPACE?key=value&...    e.g. k8s://prod?kubeconfig=/etc/k8s/config",
  "  NAME:key=value,...                e.g. hetzner:server_type=auto,max_workers=3",
  "",
  "Flags:",
  "  --json             print one JSON object: driver, namespace, params, config, warnings",
  "  --pipeline FILE    derive the default namespace from this pipeline file (default: the",
  "                     current directory): from its git repository's origin remote, else",
  "                     the repository, else the file's path (as `pocketci run` does)",
  "  -h, --help         show this help",
  "",
  "Secrets (token) are printed as ***. `pocketci drivers` lists every parameter.",
].join("\n");

/** Runs `pocketci dsn` with the arguments after the command name; returns the exit code. */
export function main(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args);
  if (values.help) {
    writeOut(DSN_HELP);
    return Promise.resolve(0);
  }
  if (positionals.length > 1) {
    throw new UsageError(
      `expected one driver string, got ${positionals.length} (quote it: pocketci dsn 'k8s://ns?a=1')`,
    );
  }
  let resolved: ResolvedDsn;
  try {
    resolved = resolveDsn(driverStringFrom(positionals[0]), { pipelinePath: values.pipeline });
  } catch (error) {
    if (error instanceof DsnError) throw new UsageError(error.message);
    throw error;
  }
  writeOut(values.json ? jsonText(resolved) : humanText(resolved, values.pipeline));
  return Promise.resolve(0);
}

interface DsnFlags {
  readonly values: { json?: boolean; help?: boolean; pipeline?: string };
  readonly positionals: string[];
}

function parseFlags(args: string[]): DsnFlags {
  try {
    return parseArgs({
      args,
      options: {
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        pipeline: { type: "string" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(flagError(error));
  }
}

/** A one-line flag error naming the option but never its value (which may be a secret). */
export function flagError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const option = /'(-[^'=\s]*)/.exec(message)?.[1] ?? "an option";
  const code = (error as { code?: string }).code;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    return `unknown option ${option}; see --help`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    return `option ${option} takes ${/argument missing/.test(message) ? "a value" : "no value"}`;
  }
  return `bad arguments; see --help`;
}

function jsonText(resolved: ResolvedDsn): string {
  return JSON.stringify({
    driver: resolved.driver,
    namespace: shownNamespace(resolved),
    params: resolved.params,
    config: redactConfig(resolved),
    warnings: resolved.warnings,
  });
}

function humanText(resolved: ResolvedDsn, pipeline: string | undefined): string {
  const parameters = describeDrivers().find((driver) => driver.name === resolved.driver)!
    .parameters;
  const config = redactConfig(resolved);
  const origin = resolved.namespaceFromDsn
    ? "from the DSN"
    : `default, ${defaultNamespaceRule(pipeline, Deno.cwd())}`;
  const lines = [
    `driver:     ${resolved.driver}`,
    `namespace:  ${shownNamespace(resolved)} (${origin})`,
  ];
  const given = Object.entries(resolved.params);
  lines.push(
    given.length === 0
      ? "params:     (none)"
      : `params:     ${given.map(([key, value]) => `${key}=${value}`).join(", ")}`,
  );
  if (parameters.length === 0) {
    lines.push("config:     (this driver takes no parameters)");
  } else {
    lines.push("config:");
    const width = Math.max(...parameters.map((parameter) => parameter.name.length));
    const shown = parameters.map((parameter) => showValue(config[parameter.name]));
    const valueWidth = Math.max(...shown.map((value) => value.length));
    parameters.forEach((parameter, index) => {
      lines.push(
        `  ${parameter.name.padEnd(width)}  ${shown[index].padEnd(valueWidth)}  ${
          sourceText(resolved, parameter)
        }`,
      );
    });
  }
  if (resolved.warnings.length > 0) {
    lines.push("warnings:");
    for (const warning of resolved.warnings) lines.push(`  ${warning}`);
  }
  return lines.join("\n");
}

function showValue(value: unknown): string {
  if (value === null || value === undefined) return "(not set)";
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.length === 0 ? "(none)" : value.join(",");
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    return entries.length === 0 ? "(none)" : entries.map(([k, v]) => `${k}=${v}`).join(",");
  }
  return String(value);
}

function sourceText(resolved: ResolvedDsn, parameter: ParameterDescription): string {
  switch (resolved.sources?.[parameter.name]) {
    case "dsn":
      return "from the DSN";
    case "env":
      return `from $${parameter.env}`;
    default:
      return "default";
  }
}
