/**
 * The rules every value crossing into the runner follows, shared by the DSL (which checks
 * them where the author writes the call) and the runner (which checks them again on every
 * request from pipeline code, since pipeline code can bypass the DSL). Each rule throws a
 * one-line error naming the call and how to fix it.
 *
 * @module
 */

import { parseDurationMs, parseMemoryBytes } from "./parse.ts";
import type { EnvValue, PullPolicy, SecretRef } from "./types.ts";

/** The largest standard input a task or call accepts (larger input belongs in a volume). */
export const MAX_STDIN_BYTES = 64 * 1024 * 1024;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

function described(value: unknown): string {
  return typeof value === "string" ? `"${value}"` : String(value);
}

/** Whether a value is a secret reference. */
export function isSecretRef(value: unknown): value is SecretRef {
  return typeof value === "object" && value !== null &&
    typeof (value as { pocketciSecret?: unknown }).pocketciSecret === "string";
}

/** A task or sandbox name: a non-empty string. */
export function checkName(kind: string, name: unknown): string {
  if (typeof name !== "string" || name.trim() === "") {
    throw new Error(`${kind}() needs a non-empty name, such as ${kind}("build")`);
  }
  return name;
}

/** An image reference: a non-empty string. */
export function checkImage(image: unknown): string {
  if (typeof image !== "string" || image.trim() === "") {
    throw new Error('image() needs an image reference, such as image("busybox")');
  }
  return image;
}

/** A secret name, as for an environment variable. */
export function checkSecretName(name: unknown): string {
  if (typeof name !== "string" || !ENV_NAME.test(name)) {
    throw new Error(
      `invalid secret name ${
        described(name)
      }: use letters, digits and underscores, like an environment variable`,
    );
  }
  return name;
}

/** Environment variables: valid names, values that are strings or `secret("NAME")`. */
export function checkEnv(vars: unknown): Readonly<Record<string, EnvValue>> {
  if (typeof vars !== "object" || vars === null || Array.isArray(vars)) {
    throw new Error('env() needs an object of variables, such as env({ CI: "1" })');
  }
  for (const [key, value] of Object.entries(vars)) {
    if (!ENV_NAME.test(key)) throw new Error(`invalid environment variable name "${key}"`);
    if (typeof value === "string") continue;
    if (!isSecretRef(value)) {
      throw new Error(`environment variable ${key} must be a string or secret("NAME")`);
    }
    checkSecretName(value.pocketciSecret);
  }
  return vars as Readonly<Record<string, EnvValue>>;
}

/** A working directory: a non-empty string. */
export function checkWorkDir(path: unknown): string {
  if (typeof path !== "string" || path === "") throw new Error("workDir() needs a path");
  return path;
}

/** A mount path: non-empty, without `..`. */
export function checkMountPath(path: unknown): string {
  if (typeof path !== "string" || path.trim() === "") {
    throw new Error('mount() needs a path, such as mount(src, "src")');
  }
  if (path.split("/").includes("..")) {
    throw new Error(`invalid mount path "${path}": ".." is not allowed`);
  }
  return path;
}

/** Standard input as bytes, at most {@link MAX_STDIN_BYTES}. */
export function checkStdin(input: unknown): Uint8Array {
  const bytes = typeof input === "string"
    ? new TextEncoder().encode(input)
    : input instanceof Uint8Array
    ? input.slice()
    : undefined;
  if (bytes === undefined) throw new Error("stdin() needs a string or a Uint8Array");
  if (bytes.length > MAX_STDIN_BYTES) {
    throw new Error(
      `stdin() input is ${bytes.length} bytes, over the ${MAX_STDIN_BYTES} byte limit; put large input in a volume with writeFiles() instead`,
    );
  }
  return bytes;
}

/** A user name or ID: a non-empty string. */
export function checkUser(user: unknown): string {
  if (typeof user !== "string" || user.trim() === "") {
    throw new Error('user() needs a user name or ID, such as user("1000")');
  }
  return user;
}

/** A yes/no setting (`privileged()`, `allowFailure()`). */
export function checkFlag(method: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw new Error(`${method}() takes true or false`);
  return value;
}

/** A CPU limit: a positive number of cores. */
export function checkCpu(cpu: unknown): number {
  if (typeof cpu !== "number" || !Number.isFinite(cpu) || cpu <= 0) {
    throw new Error(`invalid cpu limit ${cpu}: use a positive number of cores, such as 0.5`);
  }
  return cpu;
}

/** A memory limit in bytes, or a quantity such as `"512Mi"`. */
export function checkMemory(memory: unknown): number {
  if (typeof memory !== "number" && typeof memory !== "string") {
    throw new Error(`invalid memory ${memory}: use bytes or a quantity such as "512Mi"`);
  }
  return parseMemoryBytes(memory);
}

/** A timeout: milliseconds or a duration such as `"2s"`. */
export function checkTimeout(value: unknown): number {
  if (typeof value !== "number" && typeof value !== "string") {
    throw new Error(`invalid duration ${value}: use a number with a unit, such as "2s"`);
  }
  return parseDurationMs(value);
}

/** An image pull policy. */
export function checkPull(policy: unknown): PullPolicy {
  if (policy !== "missing" && policy !== "always" && policy !== "never") {
    throw new Error(`invalid pull policy "${policy}": use "missing", "always" or "never"`);
  }
  return policy;
}

/** An image platform: a non-empty string. */
export function checkPlatform(platform: unknown): string {
  if (typeof platform !== "string" || platform.trim() === "") {
    throw new Error('platform() needs a platform, such as platform("linux/amd64")');
  }
  return platform;
}

/** An entrypoint: strings. */
export function checkEntrypoint(entrypoint: unknown): string[] {
  if (!Array.isArray(entrypoint) || entrypoint.some((arg) => typeof arg !== "string")) {
    throw new Error("entrypoint() arguments must be strings");
  }
  return [...entrypoint];
}

/** The argv of a `run(cmd, ...args)` call: a non-empty command, then strings. */
export function checkCommand(command: unknown, args: readonly unknown[]): string[] {
  if (typeof command !== "string" || command === "") {
    throw new Error('run() needs a command, such as run("echo", "hello")');
  }
  for (const arg of args) {
    if (typeof arg !== "string") throw new Error("run() arguments must be strings");
  }
  return [command, ...args as string[]];
}

/** A volume or cache name: up to 63 letters, digits, `.`, `_` or `-`. */
export function checkVolumeName(kind: string, name: unknown): string {
  if (typeof name !== "string" || !VOLUME_NAME.test(name)) {
    throw new Error(
      `invalid ${kind} name ${
        described(name)
      }: use up to 63 letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
  }
  return name;
}

/** The separator between the parts of a cache key given as an array. */
export const CACHE_KEY_SEPARATOR = "-";

/** The longest cache key (or restore key), once its parts are joined. */
export const MAX_CACHE_KEY_LENGTH = 512;

const CACHE_KEY = /^[\x21-\x7e]+$/;

/**
 * A cache key or restore key: a non-empty string, or a non-empty array of non-empty strings
 * joined with {@link CACHE_KEY_SEPARATOR}; printable ASCII without spaces, bounded length.
 */
export function checkCacheKey(what: string, value: unknown): string {
  const parts = typeof value === "string" ? [value] : value;
  if (
    !Array.isArray(parts) || parts.length === 0 ||
    parts.some((part) => typeof part !== "string" || part === "")
  ) {
    throw new Error(
      `invalid ${what}: use a non-empty string or an array of non-empty strings, e.g. ["npm", await hashFiles("package-lock.json")]`,
    );
  }
  const key = parts.join(CACHE_KEY_SEPARATOR);
  if (key.length > MAX_CACHE_KEY_LENGTH) {
    throw new Error(
      `invalid ${what}: ${key.length} characters, at most ${MAX_CACHE_KEY_LENGTH}; hash long parts (hashFiles)`,
    );
  }
  if (!CACHE_KEY.test(key)) {
    throw new Error(
      `invalid ${what} ${
        JSON.stringify(key.slice(0, 80))
      }: use printable ASCII without spaces (letters, digits, punctuation)`,
    );
  }
  return key;
}

/** The key and restore keys of `cache(name, { key, restoreKeys })`, joined and checked. */
export function checkCacheOptions(
  name: string,
  key: unknown,
  restoreKeys: unknown,
): { key?: string; restoreKeys?: string[] } {
  const call = `cache("${name}")`;
  if (restoreKeys !== undefined && !Array.isArray(restoreKeys)) {
    throw new Error(`invalid ${call} restoreKeys: use an array of key prefixes, e.g. ["npm"]`);
  }
  if (restoreKeys !== undefined && key === undefined) {
    throw new Error(`${call} has restoreKeys but no key; give the key the cache is saved under`);
  }
  return {
    ...(key === undefined ? {} : { key: checkCacheKey(`${call} key`, key) }),
    ...(restoreKeys === undefined
      ? {}
      : { restoreKeys: restoreKeys.map((k) => checkCacheKey(`${call} restore key`, k)) }),
  };
}

/** Glob patterns for `hashFiles`: relative, non-empty, never leaving the pipeline directory. */
export function checkHashPatterns(patterns: unknown): string[] {
  if (!Array.isArray(patterns) || patterns.length === 0) {
    throw new Error(`hashFiles() needs at least one glob, e.g. hashFiles("package-lock.json")`);
  }
  return patterns.map((pattern) => {
    if (
      typeof pattern !== "string" || pattern.trim() === "" || pattern.startsWith("/") ||
      pattern.includes("\0") || pattern.split("/").includes("..")
    ) {
      throw new Error(
        `hashFiles(${
          JSON.stringify(pattern)
        }): give globs relative to the pipeline's directory, without ".." or a leading "/"`,
      );
    }
    return pattern;
  });
}

/** A path given to a volume method (`readFile`, `exportTo`, ...): a string. */
export function checkPath(method: string, path: unknown): string {
  if (typeof path !== "string") throw new Error(`${method}() needs a path as a string`);
  return path;
}

/** A list of paths (`readFiles`, `exclude`): strings. */
export function checkPaths(method: string, paths: unknown): string[] {
  if (!Array.isArray(paths) || paths.some((path) => typeof path !== "string")) {
    throw new Error(`${method}() needs an array of paths (strings)`);
  }
  return [...paths];
}

/** Files to write: paths mapped to text or bytes. */
export function checkFiles(files: unknown): Record<string, string | Uint8Array> {
  if (typeof files !== "object" || files === null || Array.isArray(files)) {
    throw new Error('writeFiles() needs an object of files, such as { "a.txt": "text" }');
  }
  for (const [path, content] of Object.entries(files)) {
    if (typeof content !== "string" && !(content instanceof Uint8Array)) {
      throw new Error(`writeFiles(): the content of "${path}" must be a string or a Uint8Array`);
    }
  }
  return { ...files } as Record<string, string | Uint8Array>;
}

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A service name: a DNS label (lowercase letters, digits and `-`, at most 63, not starting or
 * ending with `-`), not all digits (a resolver reads `123` as an address) and not `localhost`,
 * so a service can only be found by its own name and never stands in for another host.
 */
export function checkServiceName(name: unknown): string {
  if (
    typeof name !== "string" || !DNS_LABEL.test(name) || /^[0-9]+$/.test(name) ||
    name === "localhost"
  ) {
    throw new Error(
      `invalid service name ${
        described(name)
      }: tasks reach a service by its name, so use a DNS label: up to 63 lowercase letters, digits or "-", not all digits, not "localhost" (such as service("db"))`,
    );
  }
  return name;
}

/** A TCP port number (1-65535). */
export function checkPort(method: string, port: unknown): number {
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`${method}: invalid port ${described(port)}: use a number from 1 to 65535`);
  }
  return port;
}

/** The ports of `.ports(...)`: at least one, no repeats. */
export function checkPorts(ports: unknown): number[] {
  if (!Array.isArray(ports) || ports.length === 0) {
    throw new Error("ports() needs at least one port, such as ports(5432)");
  }
  const checked = ports.map((port) => checkPort("ports()", port));
  if (new Set(checked).size !== checked.length) {
    throw new Error("ports() lists a port twice; give each port once");
  }
  return checked;
}

/**
 * A readiness probe: `{ tcp: port }`, `{ http: "http://localhost:PORT/path" }` (the host is
 * the service itself: `localhost`, `127.0.0.1` or `serviceName`) or `{ exec: ["cmd", ...] }`.
 */
export function checkReadyProbe(
  serviceName: string,
  probe: unknown,
): { tcp: number } | { http: string } | { exec: string[] } {
  const usage = 'ready() needs { tcp: 5432 }, { http: "http://localhost:8080/health" } or ' +
    '{ exec: ["pg_isready"] }';
  if (typeof probe !== "object" || probe === null || Array.isArray(probe)) {
    throw new Error(usage);
  }
  const keys = Object.keys(probe);
  if (keys.length !== 1) throw new Error(usage);
  const value = (probe as Record<string, unknown>)[keys[0]];
  switch (keys[0]) {
    case "tcp":
      return { tcp: checkPort("ready({ tcp })", value) };
    case "exec":
      if (
        !Array.isArray(value) || value.length === 0 || value[0] === "" ||
        value.some((arg) => typeof arg !== "string")
      ) {
        throw new Error(
          'ready({ exec }) needs a command as strings, such as { exec: ["pg_isready"] }',
        );
      }
      return { exec: [...value] };
    case "http": {
      let url: URL | undefined;
      try {
        url = typeof value === "string" ? new URL(value) : undefined;
      } catch {
        url = undefined;
      }
      const hosts = ["localhost", "127.0.0.1", serviceName];
      if (
        url === undefined || url.protocol !== "http:" || !hosts.includes(url.hostname) ||
        url.username !== "" || url.password !== ""
      ) {
        throw new Error(
          `ready({ http }) needs an http:// URL of the service itself, such as "http://localhost:8080/health" (host localhost, 127.0.0.1 or "${serviceName}"), got ${
            described(typeof value === "string" ? value.slice(0, 200) : value)
          }`,
        );
      }
      return { http: url.href };
    }
    default:
      throw new Error(usage);
  }
}
