/**
 * The driver string (DSN) layer: parsing, validation against each driver's schema,
 * environment fallbacks, defaults, namespaces, run IDs and redaction.
 *
 * ```ts
 * import { resolveDsn } from "./mod.ts";
 * const resolved = resolveDsn("hetzner:token=xxx,max_workers=3", { env: {} });
 * resolved.config.max_workers; // 3
 * ```
 *
 * @module
 */

export { parseDsn } from "./parse.ts";
export { driverStringFrom, resolveDsn, type ResolveOptions } from "./resolve.ts";
export { redactConfig, secretValues, shownNamespace } from "./redact.ts";
export { describeDrivers } from "./describe.ts";
export { parseDuration } from "./duration.ts";
export { newRunId } from "./run_id.ts";
export {
  type ConfigSource,
  DRIVER_NAMES,
  type DriverDescription,
  type DriverName,
  DsnError,
  type DsnForm,
  type HostFacts,
  type ParameterDescription,
  type ParameterType,
  type ParsedDsn,
  type ResolvedDsn,
} from "./types.ts";
