/**
 * Host facts behind host-dependent defaults, read without failing when a permission is missing.
 *
 * @module
 */

import type { HostFacts } from "./types.ts";

/** The facts of the machine this process runs on; `/dev/kvm` counts as absent when unreadable. */
export function currentHost(): HostFacts {
  return { os: Deno.build.os, arch: Deno.build.arch, kvm: kvmPresent() === true };
}

/** Whether `/dev/kvm` exists, or undefined when it cannot be checked (no read permission). */
export function kvmPresent(): boolean | undefined {
  try {
    Deno.statSync("/dev/kvm");
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    return undefined;
  }
}

/** The process environment, or an empty one when `--allow-env` was not granted. */
export function processEnv(): Record<string, string> {
  try {
    return Deno.env.toObject();
  } catch {
    return {};
  }
}

/** The current directory, or `PWD`, or `/` when neither can be read. */
export function currentDirectory(env: Readonly<Record<string, string | undefined>>): string {
  try {
    return Deno.cwd();
  } catch {
    return env.PWD || "/";
  }
}

/** The user's home directory from `env`, then from the process, or undefined. */
export function homeDirectory(
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  const fromEnv = env.HOME || env.USERPROFILE;
  if (fromEnv) return fromEnv;
  try {
    return Deno.env.get("HOME") || Deno.env.get("USERPROFILE") || undefined;
  } catch {
    return undefined;
  }
}
