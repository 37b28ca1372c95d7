/**
 * From a driver string to a validated configuration: parameters, then environment
 * variables, then defaults; plus the namespace and warnings.
 *
 * @module
 */

import { chooseDriver } from "./driver_choice.ts";
import { defaultNamespace } from "./namespace.ts";
import { currentDirectory, currentHost, homeDirectory, kvmPresent, processEnv } from "./host.ts";
import { parseDsn } from "./parse.ts";
import { hidePassword, redactParam, redactValues, rememberSecrets, urlPassword } from "./redact.ts";
import { type ConfigIssue, describeParameters, parameterNames, validateConfig } from "./schemas.ts";
import { isSecretName } from "./secret_names.ts";
import { closest, nearMiss } from "./suggest.ts";
import {
  type ConfigSource,
  DRIVER_NAMES,
  type DriverName,
  DsnError,
  type HostFacts,
  type ParameterDescription,
  type ParsedDsn,
  type ResolvedDsn,
} from "./types.ts";

/** Where `resolveDsn` looks for fallbacks and the default namespace. */
export interface ResolveOptions {
  /** Environment variables for fallbacks; defaults to the process environment. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The pipeline file; its absolute path decides the default namespace. */
  readonly pipelinePath?: string;
  /** The directory relative paths start from (and whose path is hashed without a pipeline). */
  readonly cwd?: string;
  /** The host facts for host-dependent defaults; defaults to this machine. */
  readonly host?: HostFacts;
}

/**
 * Parses and validates a driver string, filling each parameter from the DSN, else its
 * environment variable, else its default. Throws `DsnError` with a one-line message that
 * never contains a secret value.
 */
export function resolveDsn(text: string, options: ResolveOptions = {}): ResolvedDsn {
  const env = options.env ?? processEnv();
  try {
    return resolveParsed(parseDsn(text), env, options);
  } catch (error) {
    if (error instanceof DsnError) throw scrubbed(error, text, env);
    throw error;
  }
}

/**
 * The driver string to use: the `--driver` flag, else `POCKETCI_DRIVER`, else `native`. An
 * empty flag is returned as given (parsing rejects it); a set but empty `POCKETCI_DRIVER`
 * throws `DsnError` (see `chooseDriver`).
 */
export function driverStringFrom(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>> = processEnv(),
): string {
  return chooseDriver(flag, env).text;
}

function resolveParsed(
  parsed: ParsedDsn,
  env: Readonly<Record<string, string | undefined>>,
  options: ResolveOptions,
): ResolvedDsn {
  const { driver } = parsed;
  const parameters = describeParameters(driver);
  const misspelt = nearMissErrors(parsed);
  if (misspelt.length > 0) throw new DsnError(misspelt.join("; "));
  const host = options.host ?? (driver === "qemu" ? currentHost() : fallbackHost());
  const kvmUnchecked = driver === "qemu" && options.host === undefined && host.os === "linux" &&
    kvmPresent() === undefined;
  const input: Record<string, string | undefined> = {};
  const sources: Record<string, ConfigSource> = {};
  for (const parameter of parameters) {
    const given = parsed.params[parameter.name];
    const fromEnv = parameter.env === null ? undefined : env[parameter.env];
    if (given !== undefined && given !== "") {
      input[parameter.name] = given;
      sources[parameter.name] = "dsn";
    } else if (fromEnv !== undefined && fromEnv !== "") {
      input[parameter.name] = fromEnv;
      sources[parameter.name] = "env";
    } else {
      sources[parameter.name] = "default";
    }
  }
  if (driver === "k8s" && sources.namespace === "default" && parsed.namespace !== undefined) {
    sources.namespace = "dsn";
  }
  const result = validateConfig(driver, input, {
    home: homeDirectory(env),
    host,
    authority: parsed.namespace,
  });
  if (!result.ok) {
    const byName = new Map(parameters.map((parameter) => [parameter.name, parameter]));
    throw new DsnError(
      result.issues.map((issue) => issueText(driver, issue, byName, sources)).join("; "),
    );
  }
  const params: Record<string, string> = {};
  const secrets = new Set<string>();
  for (const [key, value] of Object.entries(parsed.params)) {
    params[key] = redactParam(key, value);
    if (value !== "" && isSecretName(key)) secrets.add(value);
    const password = urlPassword(value);
    if (password !== undefined) secrets.add(password);
  }
  for (const parameter of parameters) {
    const value = result.config[parameter.name];
    if (typeof value !== "string") continue;
    if (parameter.secret) secrets.add(value);
    const password = urlPassword(value);
    if (password !== undefined) secrets.add(password);
  }
  // A secret repeated in another parameter (tags=, image=, even a name) is hidden there too.
  const shownParams = Object.fromEntries(
    Object.entries(params).map(([key, value]) => [
      redactValues(key, [...secrets]),
      redactValues(value, [...secrets]),
    ]),
  );
  const cwd = options.cwd ?? currentDirectory(env);
  const resolved: ResolvedDsn = {
    driver,
    namespace: parsed.namespace ?? defaultNamespace(options.pipelinePath, cwd),
    namespaceFromDsn: parsed.namespace !== undefined,
    params: shownParams,
    config: result.config,
    warnings: [
      ...warningsFor(parsed, result.config, host),
      ...(kvmUnchecked && sources.accel === "default"
        ? ["qemu: cannot read /dev/kvm (no --allow-read), so accel defaults to tcg"]
        : []),
    ].map((warning) => redactValues(warning, [...secrets])),
    sources,
  };
  rememberSecrets(resolved, [...secrets]);
  return resolved;
}

/** Host facts that do not matter: only qemu has host-dependent defaults. */
function fallbackHost(): HostFacts {
  return { os: Deno.build.os, arch: Deno.build.arch, kvm: false };
}

function issueText(
  driver: DriverName,
  issue: ConfigIssue,
  byName: ReadonlyMap<string, ParameterDescription>,
  sources: Readonly<Record<string, ConfigSource>>,
): string {
  const parameter = byName.get(issue.key);
  const env = parameter?.env ?? null;
  if (issue.missing && parameter?.required) {
    return `${driver}: ${issue.key} is required: add ${issue.key}=... to the DSN ` +
      `(${driver}:${issue.key}=...)${env === null ? "" : ` or set ${env}`}`;
  }
  const from = sources[issue.key] === "env" && env !== null ? `$${env}` : "the DSN";
  return `${driver}: ${issue.key} ${issue.message} (from ${from})`;
}

/** One error per unknown parameter that is a near miss of a known one (`docker:hots=...`). */
function nearMissErrors(parsed: ParsedDsn): string[] {
  const known = parameterNames(parsed.driver);
  const errors: string[] = [];
  for (const key of Object.keys(parsed.params)) {
    if (known.includes(key)) continue;
    const guess = nearMiss(key, known);
    if (guess !== undefined) {
      errors.push(
        `${parsed.driver}: unknown parameter "${key}" (did you mean "${guess}"?): ` +
          `fix its name, or drop it`,
      );
    }
  }
  return errors;
}

function warningsFor(
  parsed: ParsedDsn,
  config: Readonly<Record<string, unknown>>,
  host: HostFacts,
): string[] {
  const { driver } = parsed;
  const known = parameterNames(driver);
  const warnings: string[] = [];
  for (const key of Object.keys(parsed.params)) {
    if (known.includes(key)) continue;
    let warning = `${driver}: unknown parameter "${key}" is ignored`;
    const guess = closest(key, known);
    if (guess !== undefined) {
      warning += ` (did you mean "${guess}"?)`;
    } else if (key === "namespace") {
      warning += ` (set the namespace with ${driver}://NAMESPACE)`;
    } else if (known.length === 0) {
      warning += ` (the ${driver} driver takes no parameters)`;
    } else {
      warning += ` (known: ${known.join(", ")})`;
    }
    warnings.push(warning);
  }
  if (driver === "qemu") {
    const accel = config.accel;
    if (accel === "hvf" && host.os !== "darwin") {
      warnings.push("qemu: accel hvf needs macOS; this host is " + host.os);
    } else if (accel === "kvm" && !(host.os === "linux" && host.kvm)) {
      warnings.push("qemu: accel kvm needs Linux with /dev/kvm, which this host does not have");
    }
  }
  return warnings;
}

/** Replaces anything in the message that may be a secret value (defence in depth). */
function scrubbed(
  error: DsnError,
  text: string,
  env: Readonly<Record<string, string | undefined>>,
): DsnError {
  const candidates = new Set<string>();
  for (const match of text.matchAll(/([A-Za-z0-9_%-]+)=([^,&]*)/g)) {
    const password = urlPassword(match[2]);
    if (password !== undefined) candidates.add(password);
    if (!isSecretName(match[1]) || match[2] === "") continue;
    candidates.add(match[2]);
    try {
      candidates.add(decodeURIComponent(match[2]));
    } catch {
      // not percent-encoded
    }
  }
  for (const driver of DRIVER_NAMES) {
    for (const parameter of describeParameters(driver)) {
      const value = parameter.secret && parameter.env !== null ? env[parameter.env] : undefined;
      if (value) candidates.add(value);
    }
  }
  let message = hidePassword(error.message);
  for (const candidate of [...candidates].sort((a, b) => b.length - a.length)) {
    if (candidate.length >= 3) message = message.split(candidate).join("***");
  }
  return message === error.message ? error : new DsnError(message);
}
