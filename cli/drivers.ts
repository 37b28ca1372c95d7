/**
 * `pocketci drivers [NAME] [--json]`: every driver with its parameters, types, defaults and
 * environment variables, as the schemas define them.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { flagError } from "./dsn.ts";
import { UsageError } from "./errors.ts";
import { describeDrivers, type DriverDescription } from "../dsn/mod.ts";
import { unknownDriverText } from "../dsn/parse.ts";
import { isImplemented } from "../drivers/registry.ts";
import { writeOut } from "./flags.ts";

/** The help text of `pocketci drivers`. */
export const DRIVERS_HELP: string = [
  "Usage: pocketci drivers [NAME] [--json]",
  "",
  "Lists every driver (or only NAME) with its parameters: type, default, environment",
  "variable and description. A DSN parameter beats the environment variable, which beats",
  "the default. Drivers marked (not implemented yet) cannot run pipelines in this version.",
  "",
  "Flags:",
  '  --json      print one JSON object: {"drivers": [...]}; each has "implemented"',
  "  -h, --help  show this help",
].join("\n");

/** Runs `pocketci drivers`; returns the exit code. */
export function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(flagError(error));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    writeOut(DRIVERS_HELP);
    return Promise.resolve(0);
  }
  if (positionals.length > 1) {
    throw new UsageError(`expected at most one driver name, got ${positionals.length}`);
  }
  let drivers = describeDrivers();
  if (positionals.length === 1) {
    const name = positionals[0].toLowerCase();
    drivers = drivers.filter((driver) => driver.name === name);
    if (drivers.length === 0) throw new UsageError(unknownDriverText(positionals[0]));
  }
  const listed = drivers.map((driver) => ({ ...driver, implemented: isImplemented(driver.name) }));
  writeOut(
    values.json ? JSON.stringify({ drivers: listed }) : listed.map(driverText).join("\n\n"),
  );
  return Promise.resolve(0);
}

function driverText(driver: DriverDescription & { implemented: boolean }): string {
  const tag = driver.implemented ? "" : " (not implemented yet)";
  const lines = [`${driver.name}${tag}: ${driver.summary}`];
  if (driver.parameters.length === 0) {
    lines.push("  (no parameters)");
    return lines.join("\n");
  }
  const rows = driver.parameters.map((parameter) => [
    parameter.name,
    parameter.typeText,
    parameter.required ? "(required)" : parameter.default ?? "(none)",
    parameter.env ?? "-",
    parameter.description,
  ]);
  const header = ["PARAMETER", "TYPE", "DEFAULT", "ENV", "DESCRIPTION"];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length))
  );
  for (const row of [header, ...rows]) {
    lines.push(
      "  " + row.map((cell, column) => column === 4 ? cell : cell.padEnd(widths[column])).join(
        "  ",
      ),
    );
  }
  return lines.join("\n");
}
