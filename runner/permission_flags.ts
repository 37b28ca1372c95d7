/**
 * Deno permission sets: merging what the driver, the runner and the user need, and
 * converting to and from `--allow-*` flags.
 *
 * @module
 */

import type { PermissionNeed } from "../drivers/contract.ts";
import type { PipelinePermissions } from "./pipeline_process.ts";

/** The permission names a pipeline can be granted. */
export const PERMISSION_NAMES = ["read", "write", "net", "env", "run", "ffi", "sys"] as const;

/** One permission name. */
export type PermissionName = typeof PERMISSION_NAMES[number];

/** Parses one `--allow-NAME[=a,b]` (or `-A`) flag into `into`; returns false when it is not one. */
export function parseAllowFlag(
  flag: string,
  into: Record<PermissionName, boolean | string[]>,
): boolean {
  if (flag === "-A" || flag === "--allow-all") {
    for (const name of PERMISSION_NAMES) into[name] = true;
    return true;
  }
  const match = /^--allow-(read|write|net|env|run|ffi|sys)(?:=(.*))?$/.exec(flag);
  if (match === null) return false;
  const name = match[1] as PermissionName;
  if (match[2] === undefined || match[2] === "") {
    into[name] = true;
    return true;
  }
  const current = into[name];
  if (current === true) return true;
  const values = match[2].split(",").filter((value) => value !== "");
  into[name] = [...(current === false ? [] : current), ...values];
  return true;
}

/** An empty grant set. */
export function emptyGrants(): Record<PermissionName, boolean | string[]> {
  return { read: false, write: false, net: false, env: false, run: false, ffi: false, sys: false };
}

/** Resolves relative path grants (`read`, `write`) against `cwd`. */
export function absoluteGrants(grants: PipelinePermissions, cwd: string): PipelinePermissions {
  const absolute = (value: boolean | readonly string[]) =>
    typeof value === "boolean"
      ? value
      : value.map((path) => path.startsWith("/") ? path : `${cwd}/${path}`.replace(/\/\.?$/, ""));
  return { ...grants, read: absolute(grants.read), write: absolute(grants.write) };
}

/** The user's grants as permission needs (for merging with the driver's and the runner's). */
export function grantsAsNeeds(grants: PipelinePermissions): PermissionNeed[] {
  const needs: PermissionNeed[] = [];
  for (const name of PERMISSION_NAMES) {
    const grant = grants[name];
    if (grant === false) continue;
    needs.push({
      permission: name,
      values: grant === true ? true : [...grant],
      reason: "granted to the pipeline with --allow-" + name,
    });
  }
  return needs;
}
