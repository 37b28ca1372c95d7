/**
 * Turning the permissions drivers declare into Deno command-line flags: duplicates
 * merged (an unrestricted need wins over lists), values de-duplicated, one flag per
 * permission in a stable order, each with the reasons it is needed.
 *
 * @module
 */

import type { PermissionNeed } from "./contract.ts";

/** The order flags are printed in. */
const ORDER: readonly PermissionNeed["permission"][] = [
  "read",
  "write",
  "net",
  "env",
  "run",
  "sys",
  "ffi",
];

/** One merged permission with its flag and every reason behind it. */
export interface PermissionFlag {
  /** The Deno permission name. */
  readonly permission: PermissionNeed["permission"];
  /** The merged values; `true` means unrestricted. */
  readonly values: readonly string[] | true;
  /** The flag, e.g. `--allow-read=/a,/b` or `--allow-run`. */
  readonly flag: string;
  /** Why it is needed (one entry per distinct reason). */
  readonly reasons: readonly string[];
}

/**
 * Merges `needs` into one entry per permission. Throws when a value contains a comma,
 * which a Deno flag cannot express.
 */
export function mergePermissions(needs: readonly PermissionNeed[]): PermissionFlag[] {
  const merged = new Map<
    PermissionNeed["permission"],
    { values: Set<string> | true; reasons: string[] }
  >();
  for (const need of needs) {
    const entry = merged.get(need.permission) ?? { values: new Set<string>(), reasons: [] };
    if (need.values === true) {
      entry.values = true;
    } else if (entry.values !== true) {
      for (const value of need.values) {
        if (value.includes(",")) {
          throw new Error(
            `cannot express the ${need.permission} permission for "${value}" as a Deno flag (it contains a comma); rename the path`,
          );
        }
        entry.values.add(value);
      }
    }
    if (!entry.reasons.includes(need.reason)) entry.reasons.push(need.reason);
    merged.set(need.permission, entry);
  }
  const flags: PermissionFlag[] = [];
  for (const permission of ORDER) {
    const entry = merged.get(permission);
    if (entry === undefined) continue;
    const values = entry.values === true ? true : [...entry.values];
    if (values !== true && values.length === 0) continue;
    flags.push({
      permission,
      values,
      flag: values === true ? `--allow-${permission}` : `--allow-${permission}=${values.join(",")}`,
      reasons: entry.reasons,
    });
  }
  return flags;
}

/** The Deno flags for `needs`, merged, e.g. `["--allow-read=/a,/b", "--allow-run"]`. */
export function permissionFlags(needs: readonly PermissionNeed[]): string[] {
  return mergePermissions(needs).map((entry) => entry.flag);
}
