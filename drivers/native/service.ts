/**
 * Native services: a service is a host process, started like a task (its own process group,
 * its own directory, stopped with SIGTERM then SIGKILL) from the command `.run()` gave; the
 * image is ignored, so there is no image CMD to fall back on. It listens on the host, so a
 * port is published as itself (`hostPort(p) === p`), readiness connects to 127.0.0.1, and an
 * exec probe is a host process in its own group too.
 *
 * @module
 */

import { dialTcp } from "../connect.ts";
import {
  DriverError,
  type ExitStatus,
  type ProbeConnection,
  type ServiceHandle,
  type ServiceSpec,
  type TaskHandle,
  type TaskSpec,
} from "../contract.ts";
import { GroupProcess } from "./process_group.ts";

/** The task spec that runs a native service's process. */
export function serviceTaskSpec(spec: ServiceSpec): TaskSpec {
  if (spec.command === undefined || spec.command.length === 0) {
    throw new DriverError(
      "invalid",
      `service "${spec.name}" has no command: the native driver ignores images, so it cannot run the image's CMD; give the server's command with .run(...)`,
    );
  }
  return {
    id: spec.id,
    name: spec.name,
    image: spec.image,
    command: spec.command,
    entrypoint: spec.entrypoint,
    env: spec.env,
    workDir: spec.workDir,
    mounts: spec.mounts,
    user: spec.user,
    privileged: spec.privileged,
    limits: spec.limits,
  };
}

/** A TCP connection to 127.0.0.1:`port` as a probe connection. */
export function dialLocal(port: number, signal: AbortSignal): Promise<ProbeConnection> {
  return dialTcp("127.0.0.1", port, signal);
}

/** The handle of a native service around the task that runs it. */
export function nativeServiceHandle(
  spec: ServiceSpec,
  task: TaskHandle,
  exec: { env: Readonly<Record<string, string>>; cwd: string; found: Map<string, string> },
): ServiceHandle {
  let stopping: Promise<void> | undefined;
  return {
    id: spec.id,
    wait: () => task.wait(),
    stop: (graceMs) => {
      stopping ??= (async () => {
        await task.stop(graceMs);
        await task.remove();
      })();
      return stopping;
    },
    hostPort: (port) => spec.ports.includes(port) ? port : undefined,
    dial: dialLocal,
    exec: async (command, signal): Promise<ExitStatus> => {
      signal.throwIfAborted();
      const process = GroupProcess.spawn({
        command,
        cwd: exec.cwd,
        env: { ...exec.env },
        found: exec.found,
      });
      const kill = () => void process.stop(0).catch(() => {});
      signal.addEventListener("abort", kill, { once: true });
      try {
        return await process.wait();
      } finally {
        signal.removeEventListener("abort", kill);
      }
    },
  };
}
