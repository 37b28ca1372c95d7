/**
 * Every driver and its parameters, read from the schemas, for `pocketci drivers` and the README.
 *
 * @module
 */

import { describeParameters, DRIVER_SUMMARIES } from "./schemas.ts";
import { DRIVER_NAMES, type DriverDescription } from "./types.ts";

/** Every driver with its summary and parameters (types, defaults, environment variables). */
export function describeDrivers(): DriverDescription[] {
  return DRIVER_NAMES.map((name) => ({
    name,
    summary: DRIVER_SUMMARIES[name],
    parameters: describeParameters(name),
  }));
}
