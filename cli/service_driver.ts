/**
 * `pocketci run --service-driver=DSN`: the operator's choice of a second driver for the run's
 * services (docker services for native tasks). The DSN is parsed by the DSN layer like
 * `--driver`; what cannot work is refused in one line: a driver without services of its own
 * (only docker has them), the run's own driver, a run whose tasks are not host processes (they
 * could not reach the published ports on 127.0.0.1), a remote engine (its 127.0.0.1 is not
 * this host's), and a namespace of its own (one run, one namespace).
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import { driverFlag } from "./flags.ts";
import type { ResolveOptions } from "../dsn/resolve.ts";
import type { DriverName, ResolvedDsn } from "../dsn/types.ts";
import { withoutUserinfo } from "../dsn/schemas.ts";

/** The drivers that can run a native run's services (they publish ports on 127.0.0.1). */
export const SERVICE_DRIVERS: readonly DriverName[] = ["docker"];

/** The task drivers whose tasks are host processes, so they reach 127.0.0.1 of this host. */
const HOST_TASK_DRIVERS: readonly DriverName[] = ["native"];

/** Whether a docker `host` URL names an engine on this machine. */
export function isLocalEngine(host: string): boolean {
  if (host.startsWith("unix://")) return true;
  let url: URL;
  try {
    url = new URL(host);
  } catch {
    return false;
  }
  if (!["tcp:", "http:", "https:"].includes(url.protocol)) return false;
  return ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
}

/**
 * Resolves and checks `--service-driver` for a run on `run` (the resolved `--driver`, its
 * namespace final); returns the service driver's DSN with the run's namespace. Throws a
 * {@link UsageError} (one line) for what cannot work.
 */
export async function serviceDriverFlag(
  text: string,
  run: ResolvedDsn,
  options: ResolveOptions,
): Promise<ResolvedDsn> {
  const dsn = await driverFlag(text, options, "--service-driver");
  if (!SERVICE_DRIVERS.includes(dsn.driver)) {
    const why = dsn.driver === "native"
      ? "native services are host processes, which is what a native run has without the flag"
      : `the ${dsn.driver} driver runs services only as the run's --driver`;
    throw new UsageError(
      `--service-driver=${dsn.driver}: only ${
        SERVICE_DRIVERS.join(", ")
      } can be a service driver (${why}); use --service-driver=docker, or drop the flag`,
    );
  }
  if (dsn.driver === run.driver) {
    throw new UsageError(
      `--service-driver=${dsn.driver} with --driver=${run.driver}: the ${run.driver} driver runs its own services (tasks reach them by name); drop --service-driver`,
    );
  }
  if (!HOST_TASK_DRIVERS.includes(run.driver)) {
    throw new UsageError(
      `--service-driver is for --driver=${
        HOST_TASK_DRIVERS.join(", ")
      } (host processes reach the services' published ports on 127.0.0.1); ${run.driver} tasks could not reach them: drop --service-driver`,
    );
  }
  const host = String(dsn.config.host ?? "");
  if (!isLocalEngine(host)) {
    throw new UsageError(
      `--service-driver: the docker engine at ${
        withoutUserinfo(host)
      } is not on this machine, so the ports it publishes on its 127.0.0.1 are out of the native tasks' reach; use a local engine (unix:// socket, or tcp://127.0.0.1)`,
    );
  }
  if (dsn.namespaceFromDsn && dsn.namespace !== run.namespace) {
    throw new UsageError(
      `--service-driver: the namespace "${dsn.namespace}" differs from the run's "${run.namespace}" (one run has one namespace); remove it from the service driver string, or set it with --namespace`,
    );
  }
  return { ...dsn, namespace: run.namespace, namespaceFromDsn: run.namespaceFromDsn };
}
