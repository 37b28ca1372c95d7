/**
 * The Fly Machines driver: one machine per task (`auto_destroy`, restart `no`, the size preset
 * overridden by the task's limits, metadata naming namespace, run and task), whose whole output
 * is read back through `exec` (see scripts.ts and job.ts); sandboxes as machines driven with
 * `exec`; services as machines running their image's own entrypoint, reached by name through
 * hosts lines (see service.ts); one Fly volume per logical volume and cache, serialised between
 * machines.
 *
 * @module
 */

import {
  type CacheEntry,
  type CleanupReport,
  type Driver,
  type DriverCapabilities,
  type DriverContext,
  DriverError,
  type ExecSpec,
  type ExitStatus,
  noHostPorts,
  type OutputSink,
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
import { ApiError } from "../machines/api_client.ts";
import { ArchivePathError, listTar, normalizeRelative } from "../archive/mod.ts";
import { sleep } from "../timers.ts";
import type { FlyApi } from "./api.ts";
import { guestFor, presetGuest } from "./guest.ts";
import { exitEvent, followJob, waitStopped } from "./job.ts";
import { FLY_DIR, scriptFiles, TASK_JOB_DIR } from "./scripts.ts";
import {
  cachePrefix,
  cacheVolumeName,
  encode64,
  HELPER_IMAGE,
  runVolumeName,
  VolumeHelper,
  VolumeLocks,
} from "./volumes.ts";
import { addCacheIndex, readCacheIndex } from "./cache_index.ts";
import { FlyService, NetProbe } from "./service.ts";

/** The default working directory in a machine. */
export const WORKSPACE = "/workspace";

/** The resolved settings. */
export interface FlySettings {
  /** The app; `ephemeral` says whether the driver created it and deletes it on close. */
  readonly app: string;
  /** Whether the app is the driver's own. */
  readonly ephemeral: boolean;
  /** Region for machines and volumes. */
  readonly region?: string;
  /** Size preset. */
  readonly size: string;
  /** Volume size in GB. */
  readonly volumeSizeGb: number;
  /** Longest `wait` request (Fly caps it at 60 s). */
  readonly waitSeconds: number;
}

/** What the driver claims. */
export function flyCapabilities(ephemeral: boolean): DriverCapabilities {
  return {
    liveStreaming: true,
    separateStderr: true,
    stdin: true,
    sandboxes: true,
    user: false,
    privileged: false,
    limits: true,
    // An ephemeral app is deleted with its volumes when the run ends.
    caches: !ephemeral,
    images: true,
  };
}

/** A service name: a DNS label (it becomes a hosts line in other machines). */
const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Volumes need a region; without one in the DSN they go to Fly's `iad`. */
const DEFAULT_VOLUME_REGION = "iad";

function absolute(path: string | undefined, base: string): string {
  if (path === undefined || path === "" || path === ".") return base;
  return path.startsWith("/") ? path : `${base}/${path}`.replace(/\/\.$/, "");
}

function machineError(error: unknown, image: string | undefined): DriverError {
  if (error instanceof DriverError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (/manifest|image/i.test(message) && image !== undefined) {
    return new DriverError("image_not_found", `Fly could not pull image ${image}: ${message}`);
  }
  return new DriverError("failed", `could not create the Fly machine: ${message}`);
}

/** A path inside a volume, normalized (a leading `/` is dropped); `..` is an `invalid` error. */
function insideVolume(path: string, volume: string): string {
  try {
    return normalizeRelative(path.replace(/^\/+/, ""));
  } catch (error) {
    if (error instanceof ArchivePathError) {
      throw new DriverError("invalid", `path ${JSON.stringify(path)} escapes volume ${volume}`);
    }
    throw error;
  }
}

interface Tracked {
  readonly record: ResourceRecord;
  machine?: string;
  readonly kill: () => Promise<void>;
  done: Promise<unknown>;
}

/** One task machine and its history of output (for `attachTask`). */
class FlyTask {
  readonly history: { stream: "stdout" | "stderr"; chunk: Uint8Array }[] = [];
  readonly sinks = new Set<OutputSink>();
  completion!: Promise<ExitStatus>;
  machine?: string;
  stopping = false;
  removed = false;

  constructor(readonly id: string) {}

  sink: OutputSink = (stream, chunk) => {
    const copy = chunk.slice();
    this.history.push({ stream, chunk: copy });
    for (const sink of this.sinks) sink(stream, copy);
  };
}

/** The driver bound to one run. */
export class FlyDriver implements Driver {
  readonly name = "fly" as const;
  readonly capabilities: DriverCapabilities;
  readonly #api: FlyApi;
  readonly #ctx: DriverContext;
  readonly #settings: FlySettings;
  readonly #locks = new VolumeLocks();
  readonly #tasks = new Map<string, FlyTask>();
  readonly #tracked = new Set<Tracked>();
  readonly #volumes = new Map<string, { handle: VolumeHandle; record: ResourceRecord }>();
  readonly #listed = new Set<string>();
  /** The run's running services: name → private address (every later machine resolves it). */
  readonly #serviceHosts = new Map<string, string>();
  readonly #probe: NetProbe;
  readonly #probeHelpers = new Map<VolumeHelper, Tracked>();
  /** Volumes a running service holds (a Fly volume attaches to one machine): volume → service. */
  readonly #serviceVolumes = new Map<string, string>();
  #closed = false;
  #sandboxes = 0;

  /** Creates the driver (the app exists already). */
  constructor(api: FlyApi, ctx: DriverContext, settings: FlySettings) {
    this.#api = api;
    this.#ctx = ctx;
    this.#settings = settings;
    this.capabilities = flyCapabilities(settings.ephemeral);
    presetGuest(settings.size);
    this.#probe = new NetProbe(
      () => this.#startProbeHelper(),
      (helper) => this.#discardProbeHelper(helper),
    );
  }

  get #region(): string {
    return this.#settings.region ?? DEFAULT_VOLUME_REGION;
  }

  #metadata(task: string): Record<string, string> {
    return {
      pocketci_namespace: this.#ctx.namespace,
      pocketci_run: this.#ctx.runId,
      pocketci_task: task,
    };
  }

  /** The journal record of a machine the run is about to create (by name: Fly names the ID). */
  #machineRecord(name: string): ResourceRecord {
    return {
      kind: "machine",
      id: name,
      driver: "fly",
      runId: this.#ctx.runId,
      namespace: this.#ctx.namespace,
      createdAt: new Date().toISOString(),
      detail: { app: this.#settings.app },
    };
  }

  #machineName(id: string): string {
    const clean = `${this.#ctx.runId}-${id}`.toLowerCase().replace(/[^a-z0-9-]+/g, "-");
    return `ci-${clean}`.slice(0, 63).replace(/-+$/, "");
  }

  #checkOpen(): void {
    if (this.#closed) throw new DriverError("unavailable", "the fly driver is closed");
  }

  #checkSpec(spec: TaskSpec, sandbox: boolean): void {
    this.#checkOpen();
    if (!sandbox && spec.command.length === 0) {
      throw new DriverError("invalid", "the task has no command; give it at least the program");
    }
    if (spec.user !== undefined) {
      throw new UnsupportedError("fly", "user", "Fly machines run as the image's user");
    }
    if (spec.privileged) throw new UnsupportedError("fly", "privileged");
    if (spec.image === undefined) {
      throw new DriverError("invalid", "the fly driver needs an image for every task");
    }
  }

  #mounts(spec: TaskSpec): { volume: string; path: string }[] {
    for (const mount of spec.mounts) this.#refuseServiceVolume(mount.volume);
    return spec.mounts.map((mount) => {
      const known = this.#volumes.get(mount.volume.id);
      if (known === undefined && !this.#listed.has(mount.volume.id)) {
        throw new DriverError(
          "not_found",
          `volume "${mount.volume.name}" was not created by this run`,
        );
      }
      return { volume: mount.volume.id, path: absolute(mount.path, WORKSPACE) };
    });
  }

  /**
   * A volume a running service holds cannot be attached to another machine until the service
   * stops (Fly attaches a volume to one machine): waiting for it would wait for the end of the
   * run, so it is an error at once.
   */
  #refuseServiceVolume(volume: VolumeHandle): void {
    const holder = this.#serviceVolumes.get(volume.id);
    if (holder !== undefined) {
      throw new DriverError(
        "invalid",
        `volume "${volume.name}" is attached to service ${holder}'s machine, and a Fly volume attaches to one machine at a time; stop the service first, or give the service a volume of its own`,
      );
    }
  }

  /**
   * Creates a machine after recording it (by name: the ID is Fly's, known only after) and
   * waiting for its volumes; returns the ID and the function giving the volumes back.
   */
  async #launch(
    spec: TaskSpec,
    init: { exec?: string[]; entrypoint?: string[]; cmd?: string[] },
    files: { guest_path: string; raw_value: string }[],
  ): Promise<{ id: string; record: ResourceRecord; unlock: () => void }> {
    const mounts = this.#mounts(spec);
    const guest = guestFor(this.#settings.size, spec.limits);
    const unlock = await this.#locks.acquire(mounts.map((m) => m.volume));
    const name = this.#machineName(spec.id);
    const record = this.#machineRecord(name);
    try {
      this.#checkOpen();
      await this.#ctx.record(record);
      const machine = await this.#api.createMachine(this.#settings.app, {
        name,
        ...(this.#settings.region || mounts.length > 0 ? { region: this.#region } : {}),
        config: {
          image: spec.image,
          init,
          env: { ...spec.env },
          guest,
          restart: { policy: "no" },
          auto_destroy: true,
          mounts,
          files: [...scriptFiles(), ...this.#hostsFile(), ...files],
          metadata: this.#metadata(spec.id),
        },
      }).catch(async (error) => {
        if (error instanceof ApiError && error.ambiguous) await this.#destroyNamed(name);
        throw machineError(error, spec.image);
      });
      return { id: machine.id, record, unlock };
    } catch (error) {
      unlock();
      await this.#ctx.forget(record).catch(() => {});
      throw error;
    }
  }

  /** After a create whose outcome is unknown: destroys the machine if it exists after all. */
  async #destroyNamed(name: string): Promise<void> {
    const machines = await this.#api.listMachines(this.#settings.app, {
      pocketci_run: this.#ctx.runId,
    }).catch(() => []);
    for (const machine of machines.filter((m) => m.name === name)) {
      await this.#api.destroy(this.#settings.app, machine.id).catch(() => {});
    }
  }

  async #finishMachine(id: string, record: ResourceRecord, unlock: () => void): Promise<void> {
    try {
      await this.#api.destroy(this.#settings.app, id);
      await this.#ctx.forget(record);
    } finally {
      unlock();
    }
  }

  /** Starts a task machine. */
  async startTask(spec: TaskSpec, output: OutputSink): Promise<TaskHandle> {
    this.#checkSpec(spec, false);
    const workDir = absolute(spec.workDir, WORKSPACE);
    const files = spec.stdin === undefined
      ? []
      : [{ guest_path: `${TASK_JOB_DIR}/stdin`, raw_value: encode64(spec.stdin) }];
    // An explicit entrypoint comes first; without one the image's is not used (as in containers).
    const argv = [...(spec.entrypoint ?? []), ...spec.command];
    const { id, record, unlock } = await this.#launch(spec, {
      exec: ["/bin/sh", `${FLY_DIR}/run.sh`, "task", workDir, ...argv],
    }, files);
    const task = new FlyTask(spec.id);
    task.machine = id;
    task.sinks.add(output);
    this.#tasks.set(spec.id, task);
    const app = this.#settings.app;
    let gone = false;
    const waiter = waitStopped(this.#api, app, id, this.#settings.waitSeconds).finally(() =>
      gone = true
    );
    task.completion = (async (): Promise<ExitStatus> => {
      try {
        const outcome = await followJob(
          { api: this.#api, app, machine: id, dir: TASK_JOB_DIR },
          task.sink,
          { release: true, gone: () => gone },
        ).catch((error) => {
          this.#ctx.warn(`fly: reading the output of task ${spec.name} failed: ${error.message}`);
          return { notFound: false, status: undefined };
        });
        await waiter;
        const exit = await exitEvent(this.#api, app, id);
        if (outcome.notFound) {
          throw new DriverError(
            "command_not_found",
            `command "${argv[0]}" not found in image ${spec.image}`,
          );
        }
        if (exit !== undefined) return exit;
        if (outcome.status !== undefined) return { code: outcome.status };
        throw new DriverError("failed", `Fly machine ${id} stopped without an exit event`);
      } finally {
        await this.#finishMachine(id, record, unlock);
      }
    })();
    task.completion.catch(() => {});
    const tracked: Tracked = {
      record,
      machine: id,
      kill: () => this.#stopMachine(task, 0),
      done: task.completion.catch(() => {}),
    };
    this.#tracked.add(tracked);
    tracked.done.finally(() => this.#tracked.delete(tracked));
    return this.#handle(task);
  }

  async #stopMachine(task: FlyTask, graceMs: number): Promise<void> {
    if (task.machine === undefined) return;
    const seconds = Math.ceil(graceMs / 1000);
    await this.#api.stop(
      this.#settings.app,
      task.machine,
      seconds > 0 ? "SIGTERM" : "SIGKILL",
      seconds,
    ).catch((error) => {
      if (!(error instanceof ApiError && (error.status === 404 || error.status === 412))) {
        throw error;
      }
    });
  }

  #handle(task: FlyTask): TaskHandle {
    return {
      id: task.id,
      wait: () => task.completion,
      stop: async (graceMs: number) => {
        await this.#stopMachine(task, graceMs);
        await task.completion.catch(() => {});
      },
      remove: async () => {
        if (!task.removed) {
          await this.#stopMachine(task, 0).catch(() => {});
          await task.completion.catch(() => {});
          task.removed = true;
          this.#tasks.delete(task.id);
        }
      },
    };
  }

  /** Replays a task's output and follows it. */
  attachTask(id: string, output: OutputSink): Promise<TaskHandle | undefined> {
    const task = this.#tasks.get(id);
    if (task === undefined) return Promise.resolve(undefined);
    for (const { stream, chunk } of task.history) output(stream, chunk);
    task.sinks.add(output);
    return Promise.resolve(this.#handle(task));
  }

  /** Creates a Fly volume for a logical volume, or opens (creates) a cache's. */
  async createVolume(spec: VolumeSpec): Promise<VolumeHandle> {
    this.#checkOpen();
    if (spec.seed !== undefined && (spec.seed.kind !== "cache" || !this.#isOwnCache(spec.seed))) {
      throw new DriverError(
        "invalid",
        `cannot seed a cache from ${spec.seed.id}: it is not a cache of namespace ${this.#ctx.namespace}`,
      );
    }
    if (spec.kind === "cache" && !this.capabilities.caches) {
      throw new UnsupportedError(
        "fly",
        "caches",
        "an ephemeral app is deleted with its volumes at the end of the run; set app= to an existing app",
      );
    }
    const name = spec.kind === "cache"
      ? cacheVolumeName(this.#ctx.namespace, spec.name, spec.key)
      : runVolumeName(this.#ctx.namespace, this.#ctx.runId, spec.name);
    for (const known of this.#volumes.values()) {
      if (known.record.detail?.name !== name) continue;
      return known.handle.kind === "cache" ? { ...known.handle, opened: "existing" } : known.handle;
    }
    const app = this.#settings.app;
    const existing = (await this.#api.listVolumes(app)).find((v) => v.name === name);
    let id = existing?.id;
    const record: ResourceRecord = {
      kind: spec.kind,
      id: id ?? name,
      driver: "fly",
      runId: this.#ctx.runId,
      namespace: this.#ctx.namespace,
      createdAt: new Date().toISOString(),
      detail: {
        app,
        name,
        logical: spec.name,
        ...(spec.key === undefined ? {} : { key: spec.key }),
      },
    };
    let opened: "existing" | "seeded" | "created" = "existing";
    if (id === undefined) {
      await this.#ctx.record(record);
      const created = await this.#api.createVolume(
        app,
        name,
        this.#region,
        this.#settings.volumeSizeGb,
      );
      id = created.id;
      opened = "created";
    }
    const final: ResourceRecord = { ...record, id };
    if (record.id !== id) {
      await this.#ctx.record(final);
      if (opened === "created") await this.#ctx.forget(record);
    } else if (opened === "existing") {
      await this.#ctx.record(final);
    }
    const handle: VolumeHandle = {
      name: spec.name,
      kind: spec.kind,
      id,
      ...(spec.key === undefined ? {} : { key: spec.key }),
      ...(spec.kind === "cache" ? { opened } : {}),
    };
    this.#volumes.set(id, { handle, record: final });
    if (spec.kind === "cache") await addCacheIndex(this.#ctx.stateDir, name, spec.name, spec.key);
    if (spec.kind === "cache" && opened === "created" && spec.seed !== undefined) {
      const tar = await this.getArchive(spec.seed);
      await this.putArchive(handle, tar);
      const seeded = { ...handle, opened: "seeded" as const };
      this.#volumes.set(id, { handle: seeded, record: final });
      return seeded;
    }
    return handle;
  }

  #isOwnCache(seed: VolumeHandle): boolean {
    const known = this.#volumes.get(seed.id);
    return known === undefined
      ? this.#listed.has(seed.id)
      : known.record.detail?.name?.startsWith(cachePrefix(this.#ctx.namespace)) === true;
  }

  /** The namespace's caches of `name` (all keys), keys from the local cache index. */
  async listCaches(name: string): Promise<CacheEntry[]> {
    const prefix = cachePrefix(this.#ctx.namespace, name);
    const index = await readCacheIndex(this.#ctx.stateDir);
    const volumes = await this.#api.listVolumes(this.#settings.app);
    const out: CacheEntry[] = [];
    for (const volume of volumes.filter((v) => v.name.startsWith(prefix))) {
      const entry = index[volume.name];
      if (entry === undefined || entry.name !== name) continue;
      this.#listed.add(volume.id);
      out.push({
        handle: {
          name,
          kind: "cache",
          id: volume.id,
          ...(entry.key === undefined ? {} : { key: entry.key }),
        },
        ...(volume.created_at ? { lastUsedAt: volume.created_at } : {}),
      });
    }
    return out;
  }

  /** Deletes a run volume's Fly volume (caches stay: only `gc` removes them). */
  async removeVolume(volume: VolumeHandle): Promise<void> {
    const known = this.#volumes.get(volume.id);
    if (volume.kind === "cache") return;
    const release = await this.#locks.acquire([volume.id]);
    try {
      await this.#api.deleteVolume(this.#settings.app, volume.id);
      if (known) await this.#ctx.forget(known.record);
      this.#volumes.delete(volume.id);
    } finally {
      release();
    }
  }

  async #withHelper<T>(
    volume: VolumeHandle,
    body: (helper: VolumeHelper) => Promise<T>,
  ): Promise<T> {
    this.#checkOpen();
    const known = this.#volumes.get(volume.id) ??
      (this.#listed.has(volume.id) ? volume : undefined);
    if (known === undefined) {
      throw new DriverError("not_found", `volume "${volume.name}" is not known to this run`);
    }
    this.#refuseServiceVolume(volume);
    const unlock = await this.#locks.acquire([volume.id]);
    const name = this.#machineName(`helper-${++this.#sandboxes}`);
    const record = this.#machineRecord(name);
    try {
      await this.#ctx.record(record);
      const helper = await VolumeHelper.start(
        this.#api,
        this.#settings.app,
        name,
        volume.id,
        this.#region,
        this.#metadata("volume-helper"),
      );
      try {
        return await body(helper);
      } finally {
        await helper.destroy();
      }
    } finally {
      await this.#ctx.forget(record).catch(() => {});
      unlock();
    }
  }

  /** Extracts a tar stream into the volume through a helper machine. */
  async putArchive(
    volume: VolumeHandle,
    tar: ReadableStream<Uint8Array>,
    path?: string,
  ): Promise<void> {
    const bytes = new Uint8Array(await new Response(tar).arrayBuffer());
    const sub = insideVolume(path ?? "", volume.name);
    for (const entry of await listTar(new Response(bytes).body!, { maxBytes: Infinity })) {
      insideVolume(entry.path, volume.name);
      if (entry.type === "hardlink" && entry.linkTarget) {
        insideVolume(entry.linkTarget, volume.name);
      }
    }
    await this.#withHelper(volume, async (helper) => {
      const what = `extracting into volume "${volume.name}"`;
      await helper.upload("/tmp/in.tar", bytes, what);
      await helper.run([
        "sh",
        "-c",
        'mkdir -p "/v/$1" && tar xf /tmp/in.tar -C "/v/$1" && rm /tmp/in.tar',
        "sh",
        sub === "" ? "." : sub,
      ], what);
    });
  }

  /** A tar of the volume (or of `paths`) through a helper machine. */
  async getArchive(
    volume: VolumeHandle,
    paths?: readonly string[],
  ): Promise<ReadableStream<Uint8Array>> {
    const bytes = await this.#withHelper(volume, async (helper) => {
      const what = `archiving volume "${volume.name}"`;
      const script = paths === undefined
        ? 'cd /v && set -- && for f in * .[!.]* ..?*; do [ -e "$f" ] && set -- "$@" "$f"; done; ' +
          "if [ $# -eq 0 ]; then dd if=/dev/zero of=/tmp/out.tar bs=1024 count=10 2>/dev/null; " +
          'else tar cf /tmp/out.tar "$@"; fi'
        : 'cd /v && for p; do [ -e "$p" ] || { echo "no such path in the volume: $p" >&2; exit 3; }; done; tar cf /tmp/out.tar "$@"';
      await helper.run(["sh", "-c", script, "sh", ...(paths ?? [])], what);
      return await helper.download("/tmp/out.tar", what);
    });
    return new ReadableStream({
      start(controller) {
        controller.enqueue(bytes);
        controller.close();
      },
    });
  }

  /** Starts a sandbox machine. */
  async startSandbox(spec: TaskSpec): Promise<SandboxHandle> {
    this.#checkSpec(spec, true);
    const workDir = absolute(spec.workDir, WORKSPACE);
    const { id, record, unlock } = await this.#launch(
      spec,
      { exec: ["/bin/sh", `${FLY_DIR}/run.sh`, "sandbox", workDir] },
      [],
    );
    const app = this.#settings.app;
    let closed = false;
    let calls = 0;
    const running = new Set<() => Promise<void>>();
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> =>
      closing ??= (async () => {
        closed = true;
        await Promise.allSettled([...running].map((kill) => kill()));
        await this.#finishMachine(id, record, unlock);
      })();
    const tracked: Tracked = { record, machine: id, kill: close, done: Promise.resolve() };
    this.#tracked.add(tracked);
    try {
      while (!await this.#api.waitState(app, id, "started", this.#settings.waitSeconds)) {
        /* not yet */
      }
    } catch (error) {
      await close().catch(() => {});
      this.#tracked.delete(tracked);
      throw machineError(error, spec.image);
    }
    const api = this.#api;
    const sandboxEnv = spec.env;
    return {
      id: spec.id,
      exec: async (exec: ExecSpec, output: OutputSink, options = {}): Promise<ExitStatus> => {
        if (closed) throw new DriverError("unavailable", "the sandbox is closed");
        if (exec.user !== undefined) {
          throw new UnsupportedError("fly", "user", "Fly machines run as the image's user");
        }
        if (exec.command.length === 0) throw new DriverError("invalid", "the call has no command");
        const dir = `${FLY_DIR}/x${++calls}`;
        const env = Object.entries({ ...sandboxEnv, ...exec.env }).map(([k, v]) => `${k}=${v}`);
        const wd = exec.workDir === undefined ? workDir : absolute(exec.workDir, WORKSPACE);
        if (exec.stdin !== undefined) {
          await api.exec(app, id, [
            "sh",
            "-c",
            'mkdir -p "$1" && printf %s "$2" | base64 -d > "$1/stdin"',
            "sh",
            dir,
            encode64(exec.stdin),
          ], false);
        }
        const started = await api.exec(app, id, [
          "/bin/sh",
          `${FLY_DIR}/start.sh`,
          dir,
          wd,
          String(env.length),
          ...env,
          "--",
          ...exec.command,
        ], false);
        if (started.exit_code !== 0) {
          throw new DriverError(
            "failed",
            `could not start the call: ${started.stderr ?? ""}`.trim(),
          );
        }
        const kill = async () => {
          const signalAll = (sig: string) =>
            api.exec(app, id, ["sh", "-c", `kill -${sig} "$(cat "$1/pid")"`, "sh", dir], true)
              .catch(() => {});
          await signalAll("TERM");
          await sleep(options.graceMs ?? 0);
          await signalAll("KILL");
        };
        running.add(kill);
        const onAbort = () => void kill();
        options.signal?.addEventListener("abort", onAbort, { once: true });
        try {
          const outcome = await followJob({ api, app, machine: id, dir }, output, {
            release: false,
            gone: () => closed,
          });
          if (outcome.notFound) {
            throw new DriverError(
              "command_not_found",
              `command "${exec.command[0]}" not found in the sandbox`,
            );
          }
          if (outcome.status === undefined) return { code: 137, signal: 9 };
          const code = outcome.status;
          return code > 128 && code <= 192 ? { code, signal: code - 128 } : { code };
        } finally {
          options.signal?.removeEventListener("abort", onAbort);
          running.delete(kill);
        }
      },
      close: async () => {
        await close();
        this.#tracked.delete(tracked);
      },
    };
  }

  /** The hosts lines of the run's services, as a `config.files` entry (none without services). */
  #hostsFile(): { guest_path: string; raw_value: string }[] {
    if (this.#serviceHosts.size === 0) return [];
    const lines = [...this.#serviceHosts].map(([name, ip]) => `${ip} ${name}\n`).join("");
    return [{ guest_path: `${FLY_DIR}/hosts`, raw_value: btoa(lines) }];
  }

  /**
   * Starts the probe helper machine: recorded and tracked before it is created, so a close()
   * while it starts (a probe given up when its service crashed) waits for it and destroys it.
   */
  async #startProbeHelper(): Promise<VolumeHelper> {
    this.#checkOpen();
    const name = this.#machineName(`probe-${++this.#sandboxes}`);
    const record = this.#machineRecord(name);
    await this.#ctx.record(record);
    const starting = VolumeHelper.start(
      this.#api,
      this.#settings.app,
      name,
      undefined,
      this.#settings.region,
      this.#metadata("probe-helper"),
    );
    let destroyed: Promise<void> | undefined;
    const tracked: Tracked = {
      record,
      kill: () =>
        destroyed ??= (async () => {
          const helper = await starting.catch(() => undefined);
          if (helper !== undefined) await helper.destroy();
          else await this.#destroyNamed(name);
          await this.#ctx.forget(record);
          this.#tracked.delete(tracked);
        })(),
      done: Promise.resolve(),
    };
    this.#tracked.add(tracked);
    let helper: VolumeHelper;
    try {
      helper = await starting;
    } catch (error) {
      await tracked.kill().catch(() => {});
      throw machineError(error, HELPER_IMAGE);
    }
    this.#probeHelpers.set(helper, tracked);
    if (this.#closed) {
      await tracked.kill().catch(() => {});
      throw new DriverError("unavailable", "the fly driver is closed");
    }
    return helper;
  }

  /** Destroys a probe helper that stopped answering. */
  async #discardProbeHelper(helper: VolumeHelper): Promise<void> {
    const tracked = this.#probeHelpers.get(helper);
    this.#probeHelpers.delete(helper);
    await tracked?.kill();
  }

  /**
   * Starts a service machine with its image's own entrypoint and command (or the spec's) and
   * waits until Fly reports it started; its name resolves in every task and sandbox machine
   * started after it.
   */
  async startService(spec: ServiceSpec, output: OutputSink): Promise<ServiceHandle> {
    this.#checkOpen();
    if (spec.ports.length > 0) throw noHostPorts("fly", spec);
    if (!SERVICE_NAME.test(spec.name) || spec.name === "localhost") {
      // The name goes into other machines' /etc/hosts: never anything but a DNS label.
      throw new DriverError(
        "invalid",
        `service name ${
          JSON.stringify(spec.name)
        } is not a DNS label other than localhost ([a-z0-9-], at most 63, no leading or trailing -)`,
      );
    }
    if (this.#serviceHosts.has(spec.name)) {
      throw new DriverError("invalid", `a service named ${spec.name} is already running`);
    }
    if (spec.workDir !== undefined) {
      throw new DriverError(
        "invalid",
        `service ${spec.name}: a Fly service runs in its image's WORKDIR (Fly has no working directory setting); drop .workDir() from the service`,
      );
    }
    const asTask: TaskSpec = { ...spec, command: spec.command ?? [] };
    this.#checkSpec(asTask, true);
    const init = {
      ...(spec.entrypoint === undefined ? {} : { entrypoint: [...spec.entrypoint] }),
      ...(spec.command === undefined ? {} : { cmd: [...spec.command] }),
    };
    const { id, record, unlock } = await this.#launch(asTask, init, []);
    const volumes = spec.mounts.map((mount) => mount.volume.id);
    for (const volume of volumes) this.#serviceVolumes.set(volume, spec.name);
    const app = this.#settings.app;
    let finished: Promise<void> | undefined;
    const finish = () =>
      finished ??= this.#finishMachine(id, record, () => {
        for (const volume of volumes) {
          if (this.#serviceVolumes.get(volume) === spec.name) this.#serviceVolumes.delete(volume);
        }
        unlock();
      });
    const task = new FlyTask(spec.id);
    task.machine = id;
    // Tracked from now on, so a close() while the machine starts destroys it.
    let service: FlyService | undefined = undefined;
    const tracked: Tracked = {
      record,
      machine: id,
      kill: async () => {
        if (service !== undefined) return await service.stop(0);
        await this.#stopMachine(task, 0).catch(() => {});
        await finish();
      },
      done: Promise.resolve(),
    };
    this.#tracked.add(tracked);
    let ip = "";
    try {
      ip = await this.#startedAddress(id);
      this.#checkOpen();
    } catch (error) {
      await finish().catch(() => {});
      this.#tracked.delete(tracked);
      throw machineError(error, spec.image);
    }
    if (ip !== "") this.#serviceHosts.set(spec.name, ip);
    service = new FlyService(spec.id, id, ip, {
      api: this.#api,
      app,
      waitSeconds: this.#settings.waitSeconds,
      probe: this.#probe,
      stopMachine: (graceMs) => this.#stopMachine(task, graceMs),
      finish,
      onEnded: () => {
        if (this.#serviceHosts.get(spec.name) === ip) this.#serviceHosts.delete(spec.name);
      },
      warn: (message) => this.#ctx.warn(message),
    }, output);
    tracked.done = service.wait().catch(() => {});
    // A service that ended by itself is destroyed at once (auto_destroy) and forgotten; a
    // destroy that fails stays tracked, so close() tries again and reports it.
    void service.wait().catch(() => {}).then(finish).then(
      () => this.#tracked.delete(tracked),
      () => {},
    );
    return service;
  }

  /**
   * Waits until the machine started and returns its private address; "" when it stopped
   * before starting (a crash the service's `wait()` then reports with its output).
   */
  async #startedAddress(id: string): Promise<string> {
    const app = this.#settings.app;
    for (;;) {
      try {
        if (await this.#api.waitState(app, id, "started", this.#settings.waitSeconds)) break;
      } catch (error) {
        if (error instanceof ApiError && (error.status === 400 || error.status === 404)) return "";
        throw error;
      }
    }
    const machine = await this.#api.getMachine(app, id);
    return machine.private_ip ?? "";
  }

  /** Destroys every machine and volume of the run (and the app when it is the driver's). */
  async close(): Promise<CleanupReport> {
    this.#closed = true;
    const removed: ResourceRecord[] = [];
    const failed: { resource: ResourceRecord; reason: string }[] = [];
    await Promise.all([...this.#tracked].map(async (tracked) => {
      try {
        await tracked.kill();
        await tracked.done;
        removed.push(tracked.record);
      } catch (error) {
        failed.push({ resource: tracked.record, reason: (error as Error).message });
      }
    }));
    for (const [id, { handle, record }] of [...this.#volumes]) {
      if (handle.kind !== "volume") continue;
      try {
        await this.removeVolume(handle);
        removed.push(record);
      } catch (error) {
        failed.push({ resource: record, reason: (error as Error).message });
      }
      this.#volumes.delete(id);
    }
    return { removed, failed };
  }
}
