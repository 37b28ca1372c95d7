/**
 * `pocketci permissions [--driver=DSN] [--json]`: the narrowest Deno permission flags
 * the runner needs for a driver configuration, each with the reason it is needed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { flagError } from "./dsn.ts";
import { UsageError } from "./errors.ts";
import { driverStringFrom, DsnError, type ResolvedDsn, resolveDsn } from "../dsn/mod.ts";
import { mergePermissions, type PermissionFlag } from "../drivers/permissions.ts";
import { getDriverFactory, IMPLEMENTED_DRIVERS } from "../drivers/registry.ts";
import { writeOut } from "./flags.ts";

/** The help text of `pocketci permissions`. */
export const PERMISSIONS_HELP: string = [
  "Usage: pocketci permissions [--driver=DSN] [--service-driver=DSN] [--json]",
  "",
  "Prints the narrowest Deno permission flags the driver needs for this configuration,",
  "each with its reason. `pocketci run` gives its runner process exactly these (plus what",
  "the runner itself and the pipeline's --allow-* flags need).",
  "",
  "Flags:",
  "  --driver=DSN  the driver string (default: $POCKETCI_DRIVER, else native)",
  "  --service-driver=DSN",
  "                as for `pocketci run --service-driver`: the union of both drivers' needs",
  '  --json        print one JSON object: {"driver", "flags", "permissions", "implemented"}',
  "  -h, --help    show this help",
].join("\n");

/** Runs `pocketci permissions`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let values: { driver?: string; "service-driver"?: string; json?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        driver: { type: "string" },
        "service-driver": { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: false,
      strict: true,
    }));
  } catch (error) {
    throw new UsageError(flagError(error));
  }
  if (values.help) {
    writeOut(PERMISSIONS_HELP);
    return 0;
  }
  let resolved: ResolvedDsn;
  try {
    resolved = resolveDsn(driverStringFrom(values.driver), { cwd: Deno.cwd() });
  } catch (error) {
    if (error instanceof DsnError) throw new UsageError(error.message);
    throw error;
  }
  const factory = await getDriverFactory(resolved.driver);
  const needs = [...factory.permissions(resolved.config)];
  let serviceDriver: ResolvedDsn | undefined;
  if (values["service-driver"] !== undefined) {
    const { serviceDriverFlag } = await import("./service_driver.ts");
    serviceDriver = await serviceDriverFlag(values["service-driver"], resolved, {
      cwd: Deno.cwd(),
    });
    needs.push(...(await getDriverFactory(serviceDriver.driver)).permissions(serviceDriver.config));
  }
  const permissions = mergePermissions(needs);
  const implemented = IMPLEMENTED_DRIVERS.includes(resolved.driver);
  if (values.json) {
    writeOut(JSON.stringify({
      driver: resolved.driver,
      ...(serviceDriver === undefined ? {} : { serviceDriver: serviceDriver.driver }),
      flags: permissions.map((entry) => entry.flag),
      permissions,
      implemented,
      warnings: resolved.warnings,
    }));
  } else {
    writeOut(permissionsText(resolved, permissions, implemented, serviceDriver?.driver));
  }
  return 0;
}

/** The human-readable listing. */
export function permissionsText(
  resolved: ResolvedDsn,
  permissions: readonly PermissionFlag[],
  implemented: boolean,
  serviceDriver?: string,
): string {
  const services = serviceDriver === undefined ? "" : ` with ${serviceDriver} services`;
  const lines = [`Deno permissions for the ${resolved.driver} driver${services}:`, ""];
  for (const entry of permissions) {
    lines.push(`  ${entry.flag}`);
    for (const reason of entry.reasons) lines.push(`      ${reason}`);
  }
  if (permissions.length === 0) lines.push("  (none)");
  lines.push("", `Flags: ${permissions.map((entry) => shellQuote(entry.flag)).join(" ")}`);
  if (!implemented) {
    lines.push(
      `Note: the ${resolved.driver} driver is not implemented in this version; these are the permissions it will need.`,
    );
  }
  for (const warning of resolved.warnings) lines.push(`Warning: ${warning}`);
  return lines.join("\n");
}

function shellQuote(text: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}
