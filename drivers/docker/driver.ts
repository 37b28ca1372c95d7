/**
 * The docker driver: tasks and sandboxes as containers on a per-run network, volumes and caches
 * as named volumes, everything labelled and recorded, and `close()` removing all of the run's
 * containers (running or not), volumes and network while caches stay.
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import type Docker from "dockerode";
import type { Duplex } from "node:stream";
import {
  type CacheEntry,
  type CleanupReport,
  type Driver,
  type DriverCapabilities,
  type DriverContext,
  DriverError,
  type ExitStatus,
  type OutputSink,
  type OutputStream,
  type ResourceRecord,
  type SandboxHandle,
  type ServiceHandle,
  type ServiceSpec,
  type TaskHandle,
  type TaskSpec,
  UnsupportedError,
  type VolumeHandle,
  type VolumeSpec,
} from "../contract.ts";
import { DOCKER_CAPABILITIES } from "./capabilities.ts";
import { containerOptions, resolveWorkDir, validateSpec } from "./container_spec.ts";
import type { Engine } from "./engine.ts";
import { engineError } from "./engine.ts";
import { describeAddress, type EngineAddress } from "./engine_address.ts";
import { ImageManager } from "./images.ts";
import { LABEL, labelsFor, resourceName } from "./labels.ts";
import { mayShareNetns, NetnsPool } from "./netns_pool.ts";
import { type RawAttach, rawAttach } from "./raw_attach.ts";
import { DockerSandbox } from "./sandbox.ts";
import { DockerService, serviceAddress } from "./service.ts";
import {
  DockerTask,
  initFailureFilter,
  pump,
  type StopMark,
  waitForExit,
  waitForNextExit,
} from "./task.ts";
import { Demuxer } from "./demux.ts";
import { ResourceTracker } from "./tracker.ts";
import { firstLine, VolumeStore } from "./volumes.ts";

/** An open attach: output delivery, stdin, close. */
type Attached = Pick<RawAttach, "done" | "sendStdin" | "close">;

/** The command that keeps a sandbox alive when the spec gives none. */
export const SANDBOX_KEEPALIVE: readonly string[] = ["sleep", "2147483647"];

function statusCode(error: unknown): number | undefined {
  return (error as { statusCode?: number }).statusCode;
}

/** Whether a start failed because the network holder the container joins is not running. */
function holderGone(error: unknown): boolean {
  return /cannot join network of a non running container|joining network namespace of container/i
    .test(firstLine(error)) || (statusCode(error) === 404 && /container/i.test(firstLine(error)));
}

/** Why a container could not be created or started, as a one-line {@link DriverError}. */
function startError(
  spec: TaskSpec,
  image: string,
  error: unknown,
  address: EngineAddress,
): DriverError {
  if (error instanceof DriverError) return error;
  const message = firstLine(error);
  const missing =
    /exec: "([^"]+)": (?:executable file not found|stat [^:]+: no such file)/.exec(message) ??
      /exec: "([^"]+)": .*(?:not found|no such file or directory)/i.exec(message);
  if (missing) {
    return new DriverError(
      "command_not_found",
      `task ${spec.name}: command ${missing[1]} not found in image ${image}`,
    );
  }
  if (spec.privileged && /unable to apply caps/.test(message)) {
    return new UnsupportedError(
      "docker",
      "privileged",
      `this engine cannot start privileged containers (${message}); it probably runs inside a container that lacks some capabilities`,
    );
  }
  if (statusCode(error) === 404 && /image/i.test(message)) {
    return new DriverError(
      "image_not_found",
      `task ${spec.name}: image ${image} not found: ${message}`,
    );
  }
  if (statusCode(error) === undefined) return engineError(address, error);
  return new DriverError("failed", `task ${spec.name}: the engine refused to run it: ${message}`, {
    cause: error,
  });
}

/** The docker driver bound to one run. */
export class DockerDriver implements Driver {
  /** Always `docker`. */
  readonly name = "docker" as const;
  /** Everything is supported. */
  readonly capabilities: DriverCapabilities = DOCKER_CAPABILITIES;
  readonly #engine: Engine;
  readonly #docker: Docker;
  readonly #tracker: ResourceTracker;
  readonly #images: ImageManager;
  readonly #volumes: VolumeStore;
  readonly #removals = new Map<string, Promise<void>>();
  readonly #sandboxes = new Set<DockerSandbox>();
  readonly #removedTasks = new Set<string>();
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #containerNames = new Set<string>();
  readonly #netns: NetnsPool;
  #network: Promise<string> | undefined;
  #closing: Promise<CleanupReport> | undefined;

  /** Binds a driver to an open engine and a run (`dockerConfigPath`: registry credentials file). */
  constructor(engine: Engine, context: DriverContext, options: { dockerConfigPath?: string } = {}) {
    this.#engine = engine;
    this.#docker = engine.docker;
    this.#tracker = new ResourceTracker(context, describeAddress(engine.address));
    this.#images = new ImageManager(this.#docker, options.dockerConfigPath, context.signal);
    this.#volumes = new VolumeStore(this.#docker, this.#tracker);
    this.#netns = new NetnsPool({
      docker: this.#docker,
      tracker: this.#tracker,
      network: () => this.network(),
      remove: (container) => void this.#scheduleRemoval(container)(),
      warn: (message) => context.warn(message),
    });
  }

  /** The engine this driver talks to. */
  get engine(): Engine {
    return this.#engine;
  }

  #assertOpen(): void {
    if (this.#closing) {
      throw new DriverError("invalid", "the docker driver was closed for this run");
    }
  }

  /** The container name of a task or sandbox of this run. */
  containerName(id: string): string {
    return resourceName("pocketci", this.#tracker.namespace, this.#tracker.runId, id);
  }

  /** The run's network, created on first use. */
  network(): Promise<string> {
    this.#network ??= (async () => {
      const { namespace, runId } = this.#tracker;
      const name = resourceName("pocketci", namespace, runId);
      try {
        await this.#docker.createNetwork({
          Name: name,
          Driver: "bridge",
          CheckDuplicate: true,
          Labels: labelsFor(namespace, runId, "network"),
        });
      } catch (error) {
        if (statusCode(error) !== 409) {
          throw new DriverError("failed", `cannot create network ${name}: ${firstLine(error)}`);
        }
      }
      await this.#tracker.record("network", name);
      return name;
    })();
    this.#network.catch(() => this.#network = undefined);
    return this.#network;
  }

  async #prepare(
    spec: TaskSpec,
    kind: "task" | "sandbox" | "service",
  ): Promise<{ image: string; network: string }> {
    const image = validateSpec(spec, kind);
    try {
      const [, network] = await Promise.all([
        this.#images.ensure(image, spec.pull, spec.platform),
        this.network(),
      ]);
      return { image, network };
    } catch (error) {
      if (error instanceof DriverError) throw error;
      throw engineError(this.#engine.address, error);
    }
  }

  #scheduleRemoval(container: Docker.Container, taskId?: string): () => Promise<void> {
    return () => {
      if (taskId !== undefined) this.#removedTasks.add(taskId);
      let pending = this.#removals.get(container.id);
      if (!pending) {
        pending = (async () => {
          try {
            await container.remove({ force: true, v: false });
          } catch (error) {
            // close() lists the run's containers and tries again; it reports what stays.
            if (statusCode(error) !== 404) return;
          }
          await this.#tracker.forget("container", container.id);
        })();
        this.#removals.set(container.id, pending);
      }
      return Promise.resolve();
    };
  }

  /** Keeps track of an operation that may create resources, so close() can wait for it. */
  #track<T>(operation: Promise<T>): Promise<T> {
    this.#inflight.add(operation);
    const done = () => this.#inflight.delete(operation);
    operation.then(done, done);
    return operation;
  }

  /** Starts a task; a task ID that already has a container in this run returns that container. */
  async startTask(spec: TaskSpec, output: OutputSink): Promise<TaskHandle> {
    this.#assertOpen();
    return await this.#track(this.#startTask(spec, output));
  }

  async #startTask(
    spec: TaskSpec,
    output: OutputSink,
    useHolder = true,
  ): Promise<TaskHandle> {
    const { image, network } = await this.#prepare(spec, "task");
    const holder = useHolder && mayShareNetns(spec) ? await this.#netns.acquire() : undefined;
    const { namespace, runId } = this.#tracker;
    const name = this.containerName(spec.id);
    let container: Docker.Container;
    try {
      container = await this.#docker.createContainer(containerOptions(spec, {
        name,
        command: spec.command,
        labels: labelsFor(namespace, runId, "task", { task: spec.id, name: spec.name }),
        network,
        holder: holder?.id,
      }));
    } catch (error) {
      if (holder && holderGone(error)) {
        this.#netns.discard(holder);
        return await this.#startTask(spec, output, false);
      }
      if (holder) this.#netns.release(holder);
      if (statusCode(error) === 409) {
        const existing = await this.attachTask(spec.id, output);
        if (existing) return existing;
      }
      throw startError(spec, image, error, this.#engine.address);
    }
    // Recording (the runner's journal) and attaching overlap; both finish before the start.
    this.#containerNames.add(name);
    const recorded = this.#tracker.record("container", container.id, { name, task: spec.id });
    this.#removedTasks.delete(spec.id);
    const remove = this.#scheduleRemoval(container, spec.id);
    const stdin = spec.stdin;
    const filter = initFailureFilter(output);
    const nextExit = waitForNextExit(container);
    let attach: Attached;
    try {
      [attach] = await Promise.all([
        this.#attach(container, stdin !== undefined, filter.sink),
        recorded,
        nextExit.registered,
      ]);
    } catch (error) {
      if (holder) this.#netns.release(holder);
      await recorded.catch(() => {});
      await remove();
      throw startError(spec, image, error, this.#engine.address);
    }
    try {
      await container.start();
    } catch (error) {
      attach.close();
      await remove();
      if (holder && holderGone(error)) {
        // Someone stopped the holder: it is dropped and the task joins the network itself.
        this.#netns.discard(holder);
        await this.#removals.get(container.id);
        return await this.#startTask(spec, output, false);
      }
      // The start may have run on the engine before the error reached us: never reuse it.
      if (holder) this.#netns.discard(holder);
      throw startError(spec, image, error, this.#engine.address);
    }
    if (stdin !== undefined) void attach.sendStdin(stdin);
    const outputDone = attach.done;
    const stops: StopMark = { requested: false };
    const status = this.#status(
      spec.command,
      image,
      container,
      outputDone,
      filter,
      nextExit.exited,
      stops,
    );
    // Reused only after a known exit; when the status could not be read the container may still
    // run in the holder's namespace, so the holder is dropped.
    if (holder) {
      status.then(
        () => this.#netns.release(holder),
        (error) =>
          error instanceof DriverError && error.code === "command_not_found"
            ? this.#netns.release(holder) // it exited: the command was not there
            : this.#netns.discard(holder),
      );
    }
    return new DockerTask(spec.id, container, status, remove, stops);
  }

  /**
   * Attaches to a created container's output (and stdin). On a local Unix socket this reads the
   * raw stream directly from a Deno socket; elsewhere (TCP, SSH) it goes through dockerode.
   */
  async #attach(container: Docker.Container, stdin: boolean, sink: OutputSink): Promise<Attached> {
    const address = this.#engine.address;
    if (address.kind === "unix") {
      return await rawAttach(address.path, container.id, { stdin }, sink);
    }
    const stream = await container.attach({
      stream: true,
      stdout: true,
      stderr: true,
      stdin,
      hijack: stdin,
    }) as unknown as Duplex;
    stream.on("error", () => {});
    return {
      done: pump(stream, sink),
      sendStdin: (bytes: Uint8Array) => {
        stream.write(bytes);
        stream.end();
        return Promise.resolve();
      },
      close: () => void stream.destroy(),
    };
  }

  /** The exit status, or a command_not_found error when the init could not execute the command. */
  async #status(
    command: readonly string[],
    image: string,
    container: Docker.Container,
    outputDone: Promise<void>,
    initFailure: { failure: () => string | undefined; flush: () => void },
    exited: Promise<number> | undefined,
    stops: StopMark,
  ): Promise<ExitStatus> {
    const status = await waitForExit(container, outputDone, exited, stops);
    initFailure.flush();
    const failure = initFailure.failure();
    if (failure !== undefined && status.code === 127) {
      throw new DriverError(
        "command_not_found",
        `command ${command[0]} cannot be run in image ${image} (${failure})`,
      );
    }
    return status;
  }

  /** Re-attaches to a task of this run: replays its output and follows it. */
  async attachTask(id: string, output: OutputSink): Promise<TaskHandle | undefined> {
    this.#assertOpen();
    if (this.#removedTasks.has(id)) return undefined;
    const container = this.#docker.getContainer(this.containerName(id));
    let info: Docker.ContainerInspectInfo;
    try {
      info = await container.inspect();
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw engineError(this.#engine.address, error);
    }
    if (
      info.Config.Labels?.[LABEL.run] !== this.#tracker.runId ||
      info.Config.Labels?.[LABEL.kind] !== "task"
    ) return undefined;
    const byId = this.#docker.getContainer(info.Id);
    if (!this.#tracker.get("container", info.Id)) {
      await this.#tracker.record("container", info.Id, { name: info.Name, task: id });
    }
    if (info.State.Status === "created") await byId.start();
    let logs: NodeJS.ReadableStream;
    try {
      logs = await byId.logs({
        follow: true,
        stdout: true,
        stderr: true,
      }) as unknown as NodeJS.ReadableStream;
    } catch (error) {
      // 404 / 409: removed meanwhile, or being removed.
      if (statusCode(error) === 404 || statusCode(error) === 409) return undefined;
      throw engineError(this.#engine.address, error);
    }
    const filter = initFailureFilter(output);
    const delivered: Record<OutputStream, number> = { stdout: 0, stderr: 0 };
    const outputDone = pump(logs, (stream, chunk) => {
      delivered[stream] += chunk.length;
      filter.sink(stream, chunk);
    }).then(() => catchUpLogs(byId, delivered, filter.sink));
    const stops: StopMark = { requested: false };
    const status = this.#status(
      info.Config.Cmd ?? [id],
      info.Config.Image,
      byId,
      outputDone,
      filter,
      undefined,
      stops,
    );
    return new DockerTask(id, byId, status, this.#scheduleRemoval(byId, id), stops);
  }

  /** Creates a volume or opens a cache. */
  async createVolume(spec: VolumeSpec): Promise<VolumeHandle> {
    this.#assertOpen();
    return await this.#track(this.#createVolume(spec));
  }

  async #createVolume(spec: VolumeSpec): Promise<VolumeHandle> {
    try {
      return await this.#volumes.create(spec);
    } catch (error) {
      if (error instanceof DriverError) throw error;
      throw engineError(this.#engine.address, error);
    }
  }

  /** Every cache of the namespace with this logical name (all keys). */
  async listCaches(name: string): Promise<CacheEntry[]> {
    this.#assertOpen();
    try {
      return await this.#track(this.#volumes.listCaches(name));
    } catch (error) {
      if (error instanceof DriverError) throw error;
      throw engineError(this.#engine.address, error);
    }
  }

  /** Removes a run-scoped volume (a cache is kept). */
  removeVolume(volume: VolumeHandle): Promise<void> {
    return this.#volumes.remove(volume);
  }

  /** Extracts a tar stream into a volume. */
  async putArchive(
    volume: VolumeHandle,
    tar: ReadableStream<Uint8Array>,
    path?: string,
  ): Promise<void> {
    this.#assertOpen();
    return await this.#track(this.#volumes.putArchive(volume, tar, path));
  }

  /** A tar stream of a volume or of some of its paths. */
  async getArchive(
    volume: VolumeHandle,
    paths?: readonly string[],
  ): Promise<ReadableStream<Uint8Array>> {
    this.#assertOpen();
    return await this.#track(this.#volumes.getArchive(volume, paths));
  }

  /** Starts a long-lived sandbox container, reachable on the run's network by its name. */
  async startSandbox(spec: TaskSpec): Promise<SandboxHandle> {
    this.#assertOpen();
    return await this.#track(this.#startSandbox(spec));
  }

  async #startSandbox(spec: TaskSpec): Promise<SandboxHandle> {
    const { image, network } = await this.#prepare(spec, "sandbox");
    const { namespace, runId } = this.#tracker;
    const name = this.containerName(spec.id);
    const alias = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(spec.name) ? spec.name : undefined;
    let container: Docker.Container;
    try {
      container = await this.#docker.createContainer(
        containerOptions({ ...spec, stdin: undefined }, {
          name,
          command: spec.command.length > 0 ? spec.command : SANDBOX_KEEPALIVE,
          labels: labelsFor(namespace, runId, "sandbox", { task: spec.id, name: spec.name }),
          network,
          aliases: alias ? [alias] : undefined,
          hostname: alias?.slice(0, 63),
        }),
      );
    } catch (error) {
      throw startError(spec, image, error, this.#engine.address);
    }
    this.#containerNames.add(name);
    await this.#tracker.record("container", container.id, { name, task: spec.id, role: "sandbox" });
    const remove = this.#scheduleRemoval(container);
    try {
      await container.start();
    } catch (error) {
      await remove();
      throw startError(spec, image, error, this.#engine.address);
    }
    const sandbox: DockerSandbox = new DockerSandbox(
      spec.id,
      container,
      resolveWorkDir(spec.workDir),
      async () => {
        this.#sandboxes.delete(sandbox);
        await remove();
        await this.#removals.get(container.id);
      },
    );
    this.#sandboxes.add(sandbox);
    return sandbox;
  }

  /**
   * Starts a service container on the run's network under the service's name (tasks, direct or
   * through a network holder, resolve it with the engine's DNS), keeping the image's ENTRYPOINT
   * and CMD unless the spec replaces them and publishing `ports` on 127.0.0.1.
   */
  async startService(spec: ServiceSpec, output: OutputSink): Promise<ServiceHandle> {
    this.#assertOpen();
    return await this.#track(this.#startService(spec, output));
  }

  async #startService(spec: ServiceSpec, output: OutputSink): Promise<ServiceHandle> {
    const asTask: TaskSpec = { ...spec, command: spec.command ?? [] };
    const { image, network } = await this.#prepare(asTask, "service");
    const { namespace, runId } = this.#tracker;
    const name = this.containerName(spec.id);
    let container: Docker.Container;
    try {
      container = await this.#docker.createContainer(containerOptions(asTask, {
        name,
        command: asTask.command,
        labels: labelsFor(namespace, runId, "service", { task: spec.id, name: spec.name }),
        network,
        aliases: [spec.name],
        hostname: spec.name,
        service: { ports: spec.ports },
      }));
    } catch (error) {
      throw startError(asTask, image, error, this.#engine.address);
    }
    this.#containerNames.add(name);
    const recorded = this.#tracker.record("container", container.id, {
      name,
      task: spec.id,
      role: "service",
    });
    const remove = this.#scheduleRemoval(container, spec.id);
    const filter = initFailureFilter(output);
    const nextExit = waitForNextExit(container);
    let attach: Attached;
    try {
      [attach] = await Promise.all([
        this.#attach(container, false, filter.sink),
        recorded,
        nextExit.registered,
      ]);
    } catch (error) {
      await recorded.catch(() => {});
      await remove();
      throw startError(asTask, image, error, this.#engine.address);
    }
    try {
      await container.start();
    } catch (error) {
      attach.close();
      await remove();
      throw startError(asTask, image, error, this.#engine.address);
    }
    const stops: StopMark = { requested: false };
    const status = this.#status(
      spec.command ?? [`the CMD of ${image}`],
      image,
      container,
      attach.done,
      filter,
      nextExit.exited,
      stops,
    );
    const task = new DockerTask(spec.id, container, status, remove, stops);
    let info: Docker.ContainerInspectInfo;
    try {
      info = await container.inspect();
    } catch (error) {
      await task.stop(0).catch(() => {});
      await remove();
      throw engineError(this.#engine.address, error);
    }
    // Stopping a service waits for its removal (unlike a task's, which is off the critical path).
    const removed = async () => {
      await remove();
      await this.#removals.get(container.id);
    };
    return new DockerService(
      spec.id,
      task,
      container,
      this.#engine,
      serviceAddress(info, network),
      removed,
    );
  }

  /**
   * Removes the run's network. The engine may still be releasing the endpoint of a container it
   * just removed ("has active endpoints"): retry a few times, force-disconnecting the run's own
   * containers by name before the last try.
   */
  async #removeNetwork(id: string): Promise<void> {
    const network = this.#docker.getNetwork(id);
    for (let attempt = 0;; attempt++) {
      try {
        await network.remove();
        return;
      } catch (error) {
        if (attempt >= 3 || !/active endpoints/.test(firstLine(error))) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 250 * 3 ** attempt));
      if (attempt === 2) {
        // The run's own containers by name, and whatever else the engine still lists on the
        // network (network holders own most endpoints, since tasks join their namespaces).
        const listed = await network.inspect().then(
          (info: { Containers?: Record<string, unknown> }) => Object.keys(info.Containers ?? {}),
          () => [] as string[],
        );
        await Promise.all(
          [...this.#containerNames, ...listed].map((name) =>
            network.disconnect({ Container: name, Force: true }).catch(() => {})
          ),
        );
      }
    }
  }

  /** Removes every container (running or not), volume and the network of this run; caches stay. */
  close(): Promise<CleanupReport> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<CleanupReport> {
    this.#netns.close();
    const removed: ResourceRecord[] = [];
    const failed: { resource: ResourceRecord; reason: string }[] = [];
    const { namespace, runId } = this.#tracker;
    const filters = { label: [`${LABEL.namespace}=${namespace}`, `${LABEL.run}=${runId}`] };
    const docker = this.#docker;
    const attempt = async (record: ResourceRecord, action: () => Promise<unknown>) => {
      try {
        await action();
        removed.push(record);
        await this.#tracker.forget(record.kind, record.id);
      } catch (error) {
        if (statusCode(error) === 404) {
          await this.#tracker.forget(record.kind, record.id);
          return;
        }
        failed.push({ resource: record, reason: firstLine(error) });
      }
    };
    const recordOf = (
      kind: ResourceRecord["kind"],
      id: string,
      detail: Record<string, string> = {},
    ): ResourceRecord =>
      this.#tracker.get(kind, id) ??
        { kind, id, driver: "docker", runId, namespace, detail };
    try {
      // Whatever is still being created (a task starting, the network) is created before the
      // listing below, or it would be missed and leak.
      await Promise.allSettled([...this.#inflight, this.#network]);
      await Promise.all(this.#removals.values());
      const containers = await docker.listContainers({ all: true, filters });
      await Promise.all(
        containers.map((c) =>
          attempt(
            recordOf("container", c.Id, { name: c.Names?.[0] ?? "" }),
            async () => {
              // A removal started in the background (a finished task, a retired holder) is
              // awaited rather than raced ("removal already in progress").
              await this.#removals.get(c.Id);
              await docker.getContainer(c.Id).remove({ force: true, v: false });
            },
          )
        ),
      );
      const volumes = (await docker.listVolumes({ filters })).Volumes ?? [];
      await Promise.all(
        volumes.filter((v) => v.Labels?.[LABEL.kind] !== "cache").map((v) =>
          attempt(
            recordOf("volume", v.Name),
            () => docker.getVolume(v.Name).remove({ force: true }),
          )
        ),
      );
      const networks = await docker.listNetworks({ filters });
      await Promise.all(
        networks.map((n) => attempt(recordOf("network", n.Name), () => this.#removeNetwork(n.Id))),
      );
    } catch (error) {
      failed.push({
        resource: { kind: "container", id: "*", driver: "docker", runId, namespace },
        reason: engineError(this.#engine.address, error).message,
      });
    }
    await this.#engine.close();
    return { removed, failed };
  }
}

/**
 * A logs request with follow that reaches the engine while the container is exiting can end
 * without the last output (seen on Engine 20.10). Once the container has exited, one complete
 * read delivers whatever the follow missed, counted per stream in bytes.
 */
async function catchUpLogs(
  container: Docker.Container,
  delivered: Record<OutputStream, number>,
  sink: OutputSink,
): Promise<void> {
  let full: Uint8Array;
  try {
    await container.wait();
    full = await container.logs({
      follow: false,
      stdout: true,
      stderr: true,
    }) as unknown as Uint8Array;
  } catch {
    return; // removed meanwhile: nothing more can be read
  }
  const skip = { ...delivered };
  new Demuxer((stream, chunk) => {
    const drop = Math.min(skip[stream], chunk.length);
    skip[stream] -= drop;
    if (drop < chunk.length) sink(stream, chunk.subarray(drop));
  }).push(full);
}
