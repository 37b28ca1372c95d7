/**
 * The run's services (`service(name)...start()`): started through the driver, their output
 * masked and streamed with their own prefix (as `task.output` events under the service's ID)
 * and kept for `logs()`, readiness awaited (runner/readiness.ts), a crash while running
 * reported, and every service still running stopped when the pipeline ends.
 *
 * @module
 */

import {
  type Driver,
  DriverError,
  type ServiceHandle,
  type ServiceSpec,
} from "../drivers/contract.ts";
import type { ServiceInfo, ServiceRequest } from "../dsl/host.ts";
import type { RunEvent } from "./events.ts";
import { waitReady } from "./readiness.ts";
import type { TaskOutput } from "./task_output.ts";

/** How many output lines a failed start quotes. */
const QUOTED_LINES = 5;

/** What the service registry needs from the session. */
export interface ServiceDeps {
  /** The run's driver. */
  readonly driver: Driver;
  /** Emits a (masked) event. */
  readonly emit: (event: RunEvent) => void;
  /** A new run-scoped ID for `name`. */
  readonly newId: (name: string) => string;
  /** The output path of one service (masking, `task.output` events, the kept tail). */
  readonly output: (id: string, name: string) => TaskOutput;
  /**
   * The driver's spec for a checked request: secrets resolved, mounts found, the image form,
   * the privileged grant and capabilities checked (throws a one-line error otherwise).
   */
  readonly spec: (id: string, request: ServiceRequest) => ServiceSpec;
  /** Aborts when the run is cancelled. */
  readonly signal: AbortSignal;
  /** The current grace period between SIGTERM and SIGKILL. */
  readonly graceMs: () => number;
  /** An error's masked first line. */
  readonly line: (error: unknown) => string;
}

interface Running {
  readonly id: string;
  readonly name: string;
  readonly handle: ServiceHandle;
  readonly output: TaskOutput;
  /** `starting` until ready; `exited` when its process ended by itself. */
  state: "starting" | "running" | "exited" | "stopped";
  code?: number;
  stopping?: Promise<void>;
}

function hostPorts(handle: ServiceHandle, ports: readonly number[]): Record<string, number> {
  const published: Record<string, number> = {};
  for (const port of ports) {
    const host = handle.hostPort(port);
    if (host === undefined) {
      throw new DriverError("failed", `port ${port} was not published on the host`);
    }
    published[String(port)] = host;
  }
  return published;
}

/** The services of one run. */
export class RunServices {
  readonly #deps: ServiceDeps;
  readonly #services = new Map<string, Running>();

  /** Creates the registry. */
  constructor(deps: ServiceDeps) {
    this.#deps = deps;
  }

  /** Starts a service and waits for its readiness check (see the DSL's `start()`). */
  async start(request: ServiceRequest): Promise<ServiceInfo> {
    const deps = this.#deps;
    const { driver } = deps;
    if (driver.startService === undefined) {
      throw new DriverError(
        "unsupported",
        `the ${driver.name} driver does not run services yet; pick a driver that does (docker, native, k8s, fly, digitalocean, hetzner), add --service-driver=docker, or remove service("${request.name}")`,
      );
    }
    deps.signal.throwIfAborted();
    for (const other of this.#services.values()) {
      if (
        other.name === request.name && (other.state === "starting" || other.state === "running")
      ) {
        throw new Error(
          `service "${request.name}" is already running in this run: stop() it first, or give the second one another name`,
        );
      }
    }
    const id = deps.newId(request.name);
    const spec = deps.spec(id, request);
    const output = deps.output(id, request.name);
    deps.emit({
      type: "service.start",
      id,
      name: request.name,
      ...(request.image === undefined ? {} : { image: request.image }),
      ...(request.command === undefined ? {} : { command: request.command }),
    });
    const started = performance.now();
    let handle: ServiceHandle;
    try {
      handle = await driver.startService(spec, output.sink);
    } catch (error) {
      output.flush();
      const message = deps.line(error);
      deps.emit({ type: "service.end", id, name: request.name, status: "failed", error: message });
      throw new Error(`service "${request.name}" could not start: ${message}`);
    }
    const service: Running = { id, name: request.name, handle, output, state: "starting" };
    this.#services.set(id, service);
    const exited = handle.wait();
    // An exit while running is reported once running (it may come before start() is done).
    const reportExit = () => {
      if (service.state !== "running" || service.code === undefined) return;
      service.state = "exited";
      output.flush();
      deps.emit({
        type: "service.end",
        id,
        name: service.name,
        status: "exited",
        code: service.code,
        error: `service "${service.name}" exited with code ${service.code} while the run went on`,
      });
    };
    exited.then((status) => {
      service.code = status.code;
      reportExit();
    }, () => {});
    let published: Record<string, number>;
    try {
      published = hostPorts(handle, spec.ports);
      if (request.ready !== undefined) {
        await waitReady(handle, { ...request.ready, exited, signal: deps.signal });
      }
    } catch (error) {
      await this.#stop(service, "failed");
      const lines = output.lastLines(QUOTED_LINES).map((line) => line.slice(0, 200));
      const reason = deps.line(error);
      const tail = lines.length > 0
        ? `; its last output: ${lines.join(" | ")}`
        : "; it printed nothing";
      const message = `service "${service.name}" is not ready: ${reason}${tail}`;
      deps.emit({
        type: "service.end",
        id,
        name: service.name,
        status: "failed",
        ...(service.code === undefined ? {} : { code: service.code }),
        error: message,
      });
      throw new Error(message);
    }
    service.state = "running";
    deps.emit({
      type: "service.ready",
      id,
      name: service.name,
      durationMs: Math.round(performance.now() - started),
      hostPorts: published,
    });
    reportExit();
    return { id, name: service.name, hostPorts: published };
  }

  async #stop(service: Running, as: "stopped" | "failed"): Promise<void> {
    service.stopping ??= (async () => {
      const wasRunning = service.state === "running";
      service.state = "stopped";
      try {
        await service.handle.stop(this.#deps.graceMs());
      } finally {
        service.output.flush();
        if (wasRunning && as === "stopped") {
          this.#deps.emit({
            type: "service.end",
            id: service.id,
            name: service.name,
            status: "stopped",
            ...(service.code === undefined ? {} : { code: service.code }),
          });
        }
      }
    })();
    await service.stopping;
  }

  /** Stops a service (`stop()`, `await using`). Safe to call more than once. */
  async stop(id: string): Promise<void> {
    const service = this.#services.get(id);
    if (service === undefined) throw new Error(`unknown service "${id}"`);
    await this.#stop(service, "stopped");
  }

  /** The kept tail of a service's output (masked), lines joined with `\n`. */
  logs(id: string): string {
    const service = this.#services.get(id);
    if (service === undefined) throw new Error(`unknown service "${id}"`);
    return service.output.lastLines(Number.MAX_SAFE_INTEGER).join("\n");
  }

  /** Stops every service still running (the end of the pipeline); returns the failures. */
  async stopAll(): Promise<{ id: string; reason: string }[]> {
    const failures: { id: string; reason: string }[] = [];
    await Promise.all([...this.#services.values()].map(async (service) => {
      try {
        await this.#stop(service, "stopped");
      } catch (error) {
        failures.push({ id: service.id, reason: this.#deps.line(error) });
      }
    }));
    return failures;
  }
}
