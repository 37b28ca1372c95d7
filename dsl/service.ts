/**
 * `service(name)`: a long-running server (a database, a cache, an HTTP API) the pipeline's
 * tasks reach by its name, started with the image's own ENTRYPOINT and CMD and ready once its
 * readiness check passes.
 *
 * @module
 */

import { Builder } from "./builder.ts";
import { type BuilderConfig, initialConfig } from "./config.ts";
import { currentHost, type ServiceInfo, type ServiceRequest } from "./host.ts";
import type { ReadyOptions, ReadyProbe } from "./types.ts";
import {
  checkCommand,
  checkPort,
  checkPorts,
  checkReadyProbe,
  checkServiceName,
  checkTimeout,
} from "./validate.ts";

/** The readiness wait when `ready()` gives no timeout. */
export const DEFAULT_READY_TIMEOUT_MS = 60_000;

/** The time between readiness attempts when `ready()` gives no interval. */
export const DEFAULT_READY_INTERVAL_MS = 500;

/** What a service adds to the shared builder settings. */
interface ServiceExtra {
  readonly ports: readonly number[];
  readonly command?: readonly string[];
  readonly ready?: ServiceRequest["ready"];
}

function notForServices(method: string, instead: string): never {
  throw new Error(`service() has no ${method}: ${instead}`);
}

/** A started service; `await using` stops it at the end of the block. */
export class Service {
  /** The runner's ID. */
  readonly id: string;
  /** The name tasks reach it by (`name:port` on drivers with a network). */
  readonly name: string;
  readonly #hostPorts: Readonly<Record<string, number>>;

  /** Wraps a started service; use `service(name)...start()` instead. */
  constructor(info: ServiceInfo) {
    this.id = info.id;
    this.name = info.name;
    this.#hostPorts = Object.freeze({ ...info.hostPorts });
    Object.freeze(this);
  }

  /**
   * The port on the runner's host (127.0.0.1) where `port`, listed in `.ports()`, is
   * published: what a task running on the host (native driver) connects to.
   */
  hostPort(port: number): number {
    checkPort("hostPort()", port);
    const published = this.#hostPorts[String(port)];
    if (published === undefined) {
      const listed = Object.keys(this.#hostPorts);
      throw new Error(
        `hostPort(${port}): service "${this.name}" does not publish port ${port}; add it to .ports(${
          [...listed, String(port)].join(", ")
        })`,
      );
    }
    return published;
  }

  /** The kept tail of the service's output (stdout and stderr lines, secrets masked). */
  logs(): Promise<string> {
    return currentHost().serviceLogs(this.id);
  }

  /** Stops the service (SIGTERM, then SIGKILL after the grace period). Safe to call twice. */
  stop(): Promise<void> {
    return currentHost().stopService(this.id);
  }

  /** Stops the service at the end of an `await using` block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/**
 * An immutable service builder: the shared builder methods that make sense for a server
 * (image, env, user, workDir, mount, limits, pull, platform, entrypoint, privileged), plus
 * `ports`, `ready`, `run` and `start`.
 */
export class ServiceBuilder extends Builder {
  readonly #extra: ServiceExtra;

  /** Creates a builder; use {@link service} instead. */
  constructor(config: BuilderConfig, extra: ServiceExtra = { ports: Object.freeze([]) }) {
    super(config);
    this.#extra = Object.freeze(extra);
    Object.freeze(this);
  }

  /** A service builder with `config`. */
  protected derive(config: BuilderConfig): this {
    return new ServiceBuilder(config, this.#extra) as this;
  }

  #withExtra(changes: Partial<ServiceExtra>): ServiceBuilder {
    return new ServiceBuilder(this.config, { ...this.#extra, ...changes });
  }

  /** Services are named once, by `service(name)`: the name is their address. */
  override name(_name: string): this {
    return notForServices("name()", "the name is the address tasks use; call service(name)");
  }

  /** Not for services: a service runs until it is stopped. */
  override timeout(_duration: number | string): this {
    return notForServices("timeout()", "it runs until stopped; give ready() a timeout instead");
  }

  /** Not for services: nothing reads a server's standard input. */
  override stdin(_input: string | Uint8Array): this {
    return notForServices("stdin()", "put input in a volume and mount() it");
  }

  /** Not for services: a service that fails to start always rejects `start()`. */
  override allowFailure(_allow = true): this {
    return notForServices("allowFailure()", "catch the error of start() instead");
  }

  /** Not for services: they always outlive the pipeline function until the run ends. */
  override background(_enabled = true): this {
    return notForServices("background()", "services run until stopped or until the run ends");
  }

  /** Not for services: readiness is the service's retry loop. */
  override retry(_n: number, _options?: unknown): this {
    return notForServices("retry()", "its readiness check is retried until ready()'s timeout");
  }

  /** Not for services: read the kept output with `logs()` on the started service. */
  override onOutput(_callback: unknown): this {
    return notForServices("onOutput()", "read its output with logs() on the started service");
  }

  /**
   * Publishes TCP ports on the runner's host, on 127.0.0.1 only (for tasks running on the
   * host: `svc.hostPort(port)`). Tasks of container drivers reach every port by name without it.
   */
  ports(...ports: number[]): ServiceBuilder {
    return this.#withExtra({ ports: Object.freeze(checkPorts(ports)) });
  }

  /**
   * Makes `start()` wait until `probe` passes: `{ tcp: 5432 }`, `{ http:
   * "http://localhost:8080/health" }` (200-399) or `{ exec: ["pg_isready"] }`, tried every
   * `interval` (500ms) for at most `timeout` (60s).
   */
  ready(probe: ReadyProbe, options: ReadyOptions = {}): ServiceBuilder {
    const checked = checkReadyProbe(this.config.name, probe);
    const timeoutMs = options.timeout === undefined
      ? DEFAULT_READY_TIMEOUT_MS
      : checkTimeout(options.timeout);
    const intervalMs = options.interval === undefined
      ? DEFAULT_READY_INTERVAL_MS
      : checkTimeout(options.interval);
    return this.#withExtra({ ready: Object.freeze({ probe: checked, timeoutMs, intervalMs }) });
  }

  /**
   * Replaces the image's CMD with `command args...` (the image's ENTRYPOINT still runs unless
   * `entrypoint()` replaces it). Drivers that run on the host need it: it is what they run.
   */
  run(command: string, ...args: string[]): ServiceBuilder {
    return this.#withExtra({ command: Object.freeze(checkCommand(command, args)) });
  }

  /** The request the runner receives. */
  #request(): ServiceRequest {
    const config = this.config;
    const extra = this.#extra;
    return {
      name: config.name,
      image: config.image,
      ...(extra.command ? { command: [...extra.command] } : {}),
      ...(config.entrypoint ? { entrypoint: [...config.entrypoint] } : {}),
      env: { ...config.env },
      workDir: config.workDir,
      mounts: config.mounts.map((mount) => ({ volumeId: mount.volume.id, path: mount.path })),
      user: config.user,
      privileged: config.privileged,
      cpu: config.cpu,
      memoryBytes: config.memoryBytes,
      pull: config.pull,
      platform: config.platform,
      ports: [...extra.ports],
      ...(extra.ready ? { ready: extra.ready } : {}),
    };
  }

  /**
   * Starts the service and resolves once it is ready. Rejects when it exits or never becomes
   * ready, naming the check that failed and the service's last output lines. It is stopped by
   * `stop()`, at the end of an `await using` block, or when the pipeline ends.
   */
  async start(): Promise<Service> {
    return new Service(await currentHost().startService(this.#request()));
  }
}

/** Starts building a service named `name` (a DNS label: tasks reach it as `name:port`). */
export function service(name: string): ServiceBuilder {
  return new ServiceBuilder(initialConfig("service", checkServiceName(name)));
}
