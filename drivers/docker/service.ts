/**
 * Docker services: the handle of a started service container. The container sits on the run's
 * network under the service's name (a network alias), so tasks reach `name:port`; `.ports()`
 * are published on the engine host's 127.0.0.1. Readiness probes connect to the container's own
 * address on the run network (never to a published port, whose proxy accepts connections
 * before the server listens): directly from the runner when the engine is local, through the
 * SSH connection when the engine is remote over SSH; exec probes use the exec API.
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import type Docker from "dockerode";
import { Duplex } from "node:stream";
import type { ExitStatus, ProbeConnection, ServiceHandle, TaskHandle } from "../contract.ts";
import type { Engine } from "./engine.ts";
import { dialTcp, raceAbort } from "../connect.ts";

/** What the engine told about a started service container. */
export interface ServiceAddress {
  /** The container's IP address on the run network. */
  readonly ip: string;
  /** Published ports: service port to host port on 127.0.0.1. */
  readonly hostPorts: ReadonlyMap<number, number>;
}

/** Reads the container's address on `network` and its published ports from an inspect. */
export function serviceAddress(
  info: Docker.ContainerInspectInfo,
  network: string,
): ServiceAddress {
  const ip = info.NetworkSettings?.Networks?.[network]?.IPAddress ?? "";
  const hostPorts = new Map<number, number>();
  for (const [key, bindings] of Object.entries(info.NetworkSettings?.Ports ?? {})) {
    const port = Number(key.split("/")[0]);
    const local = (bindings ?? []).find((b) => b.HostIp === "127.0.0.1") ?? bindings?.[0];
    if (local?.HostPort) hostPorts.set(port, Number(local.HostPort));
  }
  return { ip, hostPorts };
}

function fromDuplex(stream: Duplex, signal: AbortSignal): ProbeConnection {
  const close = () => void stream.destroy();
  signal.addEventListener("abort", close, { once: true });
  stream.on("error", () => {});
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      let open = true;
      const end = () => {
        if (open) controller.close();
        open = false;
      };
      stream.on("data", (chunk: Uint8Array) => {
        if (open) controller.enqueue(new Uint8Array(chunk));
      });
      stream.once("end", end);
      stream.once("close", end);
    },
    cancel: close,
  });
  const writable = new WritableStream<Uint8Array>({
    write: (chunk) =>
      new Promise<void>((resolve, reject) =>
        stream.write(chunk, (error) => error ? reject(error) : resolve())
      ),
    close: () => void stream.end(),
  });
  return { readable, writable, close };
}

/** Connects to `ip:port` from where the engine runs. */
export async function dialContainer(
  engine: Engine,
  ip: string,
  port: number,
  signal: AbortSignal,
): Promise<ProbeConnection> {
  signal.throwIfAborted();
  if (ip === "") throw new Error("the container has no address on the run network");
  if (engine.dialFromEngineHost !== undefined) {
    const channel = await raceAbort(
      engine.dialFromEngineHost(ip, port),
      signal,
      (stream) => void stream.destroy(),
    );
    return fromDuplex(channel, signal);
  }
  return await dialTcp(ip, port, signal);
}

/** Runs `command` in the container with the exec API; resolves with its exit code. */
export async function execInContainer(
  container: Docker.Container,
  command: readonly string[],
  signal: AbortSignal,
): Promise<ExitStatus> {
  signal.throwIfAborted();
  const exec = await container.exec({
    Cmd: [...command],
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({ hijack: true, stdin: false }) as unknown as Duplex;
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    stream.on("data", () => {});
    stream.once("end", done);
    stream.once("close", done);
    stream.once("error", done);
    signal.addEventListener("abort", () => {
      stream.destroy();
      done();
    }, { once: true });
  });
  signal.throwIfAborted();
  const info = await exec.inspect();
  return { code: info.ExitCode ?? -1 };
}

/** A started service container. */
export class DockerService implements ServiceHandle {
  /** The service's run-scoped ID. */
  readonly id: string;
  readonly #task: TaskHandle;
  readonly #container: Docker.Container;
  readonly #engine: Engine;
  readonly #address: ServiceAddress;
  readonly #removed: () => Promise<void>;
  #stopping: Promise<void> | undefined;

  /**
   * Wraps the task handle of the service's container and its address; `removed` removes the
   * container and resolves once it is gone.
   */
  constructor(
    id: string,
    task: TaskHandle,
    container: Docker.Container,
    engine: Engine,
    address: ServiceAddress,
    removed: () => Promise<void>,
  ) {
    this.#removed = removed;
    this.id = id;
    this.#task = task;
    this.#container = container;
    this.#engine = engine;
    this.#address = address;
  }

  /** Resolves when the container exits. */
  wait(): Promise<ExitStatus> {
    return this.#task.wait();
  }

  /** SIGTERM, SIGKILL after `graceMs`, then removal. */
  stop(graceMs: number): Promise<void> {
    this.#stopping ??= (async () => {
      await this.#task.stop(graceMs);
      await this.#removed();
    })();
    // A second stop with a shorter grace brings the SIGKILL forward.
    void this.#task.stop(graceMs).catch(() => {});
    return this.#stopping;
  }

  /** The host port on 127.0.0.1 of a published port. */
  hostPort(port: number): number | undefined {
    return this.#address.hostPorts.get(port);
  }

  /** Connects to the container's own address on the run network. */
  dial(port: number, signal: AbortSignal): Promise<ProbeConnection> {
    return dialContainer(this.#engine, this.#address.ip, port, signal);
  }

  /** Runs a probe command in the container. */
  exec(command: readonly string[], signal: AbortSignal): Promise<ExitStatus> {
    return execInContainer(this.#container, command, signal);
  }
}
