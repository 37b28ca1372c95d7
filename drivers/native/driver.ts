/**
 * The native driver: tasks are host processes, each the leader of its own process
 * group; volumes are directories in the run's workspace and caches directories in
 * the namespace's state directory; mounts are symlinks in the task's directory.
 *
 * Re-attaching: native processes are children of the runner process, so
 * `attachTask` works within the same driver instance only. It returns a handle on
 * the existing process and replays its output from the start (from a bounded
 * buffer: the first 1 MiB and the last 4 MiB, with a marker for what was dropped).
 *
 * @module
 */

import { extractTar, packDirectory } from "../archive/mod.ts";
import { ArchivePathError, isInside, joinPath, normalizeRelative } from "../archive/paths.ts";
import { TarError } from "../archive/tar_format.ts";
import {
  type CacheEntry,
  type CapabilityName,
  type CleanupReport,
  type Driver,
  type DriverCapabilities,
  type DriverContext,
  DriverError,
  type ExecSpec,
  type ExitStatus,
  type Mount,
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
import {
  cacheRoot,
  createSymlink,
  execWorkDir,
  hostBaseEnv,
  MARKER_FILE,
  prepareTaskDir,
  realInside,
  safeName,
  workspaceDir,
} from "./layout.ts";
import { GroupProcess } from "./process_group.ts";
import { nativeServiceHandle, serviceTaskSpec } from "./service.ts";
import { cacheDir, cachesNamed, openCacheDir, touchCache } from "./caches.ts";
import { nativeCapabilities } from "./factory.ts";
import { type CgroupSupport, detectCgroups } from "./cgroup_detect.ts";
import { CgroupLimits, type LimitGroup } from "./cgroup_limits.ts";

/** Grace period for an aborted sandbox call when the caller gives none. */
const DEFAULT_GRACE_MS = 10_000;

interface VolumeEntry {
  readonly handle: VolumeHandle;
  readonly record?: ResourceRecord;
}

interface TaskState {
  readonly process: GroupProcess;
  /** The exit status, once the task's cgroup (if any) was read and removed. */
  readonly exit: Promise<ExitStatus>;
  readonly dir: string;
  readonly dirRecord: ResourceRecord;
  readonly links: readonly string[];
  readonly settled: Promise<void>;
  removed: boolean;
}

/** Options for {@link createNativeDriver}. */
export interface NativeDriverOptions {
  /** What the host offers for limits; detected when absent (tests pass a verdict). */
  readonly cgroups?: CgroupSupport;
}

/** Creates a native driver bound to one run. */
export async function createNativeDriver(
  context: DriverContext,
  options: NativeDriverOptions = {},
): Promise<Driver> {
  const workspace = workspaceDir(context.runDir);
  const [caches, cgroups] = await Promise.all([
    cacheRoot(context.stateDir, context.namespace),
    options.cgroups ?? detectCgroups(),
    Deno.mkdir(workspace, { recursive: true }),
  ]);
  const driver = new NativeDriver(context, workspace, caches, cgroups);
  await driver.init();
  return driver;
}

class NativeDriver implements Driver {
  readonly name = "native" as const;
  readonly capabilities: DriverCapabilities;
  readonly unsupportedReasons: Readonly<Partial<Record<CapabilityName, string>>>;
  readonly #context: DriverContext;
  readonly #workspace: string;
  readonly #cacheRoot: string;
  readonly #baseEnv = hostBaseEnv();
  /** Commands already found on PATH, for every task and sandbox call of this run. */
  readonly foundCommands = new Map<string, string>();
  readonly #tasks = new Map<string, TaskState>();
  readonly #sandboxes = new Set<NativeSandbox>();
  readonly #volumes = new Map<string, Promise<VolumeEntry>>();
  readonly #workspaceRecord: ResourceRecord;
  /** Where removed directories wait for their contents to be deleted in the background. */
  readonly #trash: string;
  #trashed = 0;
  /** The background deletions, one after the other. */
  #deletions: Promise<void> = Promise.resolve();
  readonly #limits: CgroupLimits | undefined;
  readonly #limitsUnavailable: string;
  readonly #groups = new Set<LimitGroup>();
  #warnedImage = false;
  #closed = false;
  #removed: ResourceRecord[] = [];

  constructor(context: DriverContext, workspace: string, caches: string, cgroups: CgroupSupport) {
    this.#context = context;
    this.#workspace = workspace;
    this.#cacheRoot = caches;
    this.capabilities = nativeCapabilities(cgroups.available);
    this.#limitsUnavailable = cgroups.available ? "" : cgroups.reason;
    this.unsupportedReasons = cgroups.available ? {} : { limits: cgroups.reason };
    this.#limits = cgroups.available
      ? new CgroupLimits(cgroups.layout, {
        context,
        makeRecord: (id, detail) => this.record("cgroup", id, detail),
        forget: (record) => this.#forget(record),
      })
      : undefined;
    this.#workspaceRecord = this.record("dir", workspace, { role: "workspace" });
    this.#trash = joinPath(workspace, "trash");
  }

  async init(): Promise<void> {
    await this.#context.record(this.#workspaceRecord);
    await Deno.writeTextFile(joinPath(this.#workspace, MARKER_FILE), this.#context.runId);
    await Deno.mkdir(this.#trash, { recursive: true });
  }

  record(kind: ResourceRecord["kind"], id: string, detail: Record<string, string>): ResourceRecord {
    return {
      kind,
      id,
      driver: "native",
      runId: this.#context.runId,
      namespace: this.#context.namespace,
      createdAt: new Date().toISOString(),
      detail,
    };
  }

  async startTask(spec: TaskSpec, output: OutputSink): Promise<TaskHandle> {
    this.#ensureOpen();
    const existing = this.#tasks.get(spec.id);
    if (existing !== undefined && !existing.removed) return this.#attach(spec.id, existing, output);
    this.#checkSpec(spec);
    if (spec.command.length === 0 && (spec.entrypoint?.length ?? 0) === 0) {
      throw new DriverError("invalid", `task "${spec.name}" has an empty command`);
    }
    const dir = joinPath(this.#workspace, `tasks/${await safeName(spec.id)}`);
    makeDirectory(dir);
    const dirRecord = this.record("dir", dir, { role: "task", task: spec.id });
    await this.#context.record(dirRecord);
    let child: GroupProcess;
    let links: readonly string[] = [];
    let group: LimitGroup | undefined;
    try {
      const prepared = await prepareTaskDir(
        spec.name,
        dir,
        spec.workDir,
        spec.mounts,
        (mount) => this.#mountTarget(mount),
      );
      links = prepared.links;
      group = await this.#limitGroup("task", spec);
      this.#ensureOpen();
      child = GroupProcess.spawn({
        command: [...(spec.entrypoint ?? []), ...spec.command],
        cwd: prepared.cwd,
        env: { ...this.#baseEnv, ...spec.env },
        stdin: spec.stdin,
        cgroupProcs: group?.procs,
        found: this.foundCommands,
      });
    } catch (error) {
      if (group !== undefined) await this.releaseGroup(group).catch(() => {});
      await this.#removeDir(dir, dirRecord, links);
      throw error;
    }
    child.addSink(output, false);
    const exit = this.#exitOf(child, group);
    const settled = Promise.all([this.#track(child, { task: spec.id }), exit]).then(() => {});
    const state: TaskState = {
      process: child,
      exit,
      dir,
      dirRecord,
      links,
      settled,
      removed: false,
    };
    this.#tasks.set(spec.id, state);
    return this.#handle(spec.id, state);
  }

  /** Starts a service: a host process run like a task, from the command `.run()` gave. */
  async startService(spec: ServiceSpec, output: OutputSink): Promise<ServiceHandle> {
    const task = await this.startTask(serviceTaskSpec(spec), output);
    return nativeServiceHandle(spec, task, {
      env: { ...this.#baseEnv, ...spec.env },
      cwd: this.#workspace,
      found: this.foundCommands,
    });
  }

  attachTask(id: string, output: OutputSink): Promise<TaskHandle | undefined> {
    const state = this.#tasks.get(id);
    if (state === undefined || state.removed) return Promise.resolve(undefined);
    return Promise.resolve(this.#attach(id, state, output));
  }

  async createVolume(spec: VolumeSpec): Promise<VolumeHandle> {
    this.#ensureOpen();
    if (spec.name === "") throw new DriverError("invalid", "a volume needs a non-empty name");
    const key = spec.kind === "cache" && spec.key !== undefined
      ? `cache:${spec.name}\u0000${spec.key}`
      : `${spec.kind}:${spec.name}`;
    let pending = this.#volumes.get(key);
    if (pending === undefined) {
      // Stored before the first await, so concurrent calls for one name share one volume.
      pending = this.#newVolume(spec);
      this.#volumes.set(key, pending);
      pending.catch(() => this.#volumes.delete(key));
      return (await pending).handle;
    }
    const { handle } = await pending;
    if (spec.kind !== "cache") return handle;
    await touchCache(handle.id, spec.name, this.#context.runId, spec.key);
    return { ...handle, opened: "existing" };
  }

  async #newVolume(spec: VolumeSpec): Promise<VolumeEntry> {
    if (spec.kind === "cache") {
      const dir = await cacheDir(this.#cacheRoot, spec.name, spec.key);
      if (spec.seed !== undefined && spec.seed.kind !== "cache") {
        throw new DriverError("invalid", "a cache can only be seeded from another cache");
      }
      const seed = spec.seed === undefined ? undefined : this.#volumeDir(spec.seed);
      const opened = await openCacheDir(this.#cacheRoot, dir, seed);
      await touchCache(dir, spec.name, this.#context.runId, spec.key);
      const key = spec.key === undefined ? {} : { key: spec.key };
      return { handle: { name: spec.name, kind: "cache", id: dir, ...key, opened } };
    }
    const safe = await safeName(spec.name);
    const dir = joinPath(this.#workspace, `volumes/${safe}`);
    await Deno.mkdir(dir, { recursive: true });
    const record = this.record("dir", dir, { role: "volume", volume: spec.name });
    await this.#context.record(record);
    return { handle: { name: spec.name, kind: "volume", id: dir }, record };
  }

  async listCaches(name: string): Promise<CacheEntry[]> {
    this.#ensureOpen();
    return await cachesNamed(this.#cacheRoot, name);
  }

  /** Removes a run volume. Caches are left alone: only `pocketci gc` removes them. */
  async removeVolume(volume: VolumeHandle): Promise<void> {
    this.#ensureOpen();
    if (volume.kind === "cache") return;
    const key = `volume:${volume.name}`;
    const known = await this.#volumes.get(key)?.catch(() => undefined);
    if (known === undefined || known.handle.id !== volume.id) {
      throw new DriverError("not_found", `volume "${volume.name}" does not belong to this run`);
    }
    this.#volumes.delete(key);
    await Deno.remove(volume.id, { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    if (known.record) await this.#forget(known.record);
  }

  async putArchive(
    volume: VolumeHandle,
    tar: ReadableStream<Uint8Array>,
    path?: string,
  ): Promise<void> {
    this.#ensureOpen();
    const root = this.#volumeDir(volume);
    try {
      const destination = joinPath(root, normalizeRelative(path ?? ""));
      await Deno.mkdir(destination, { recursive: true });
      if (!(await realInside(root, destination))) {
        throw new DriverError(
          "invalid",
          `path "${path}" leads outside volume "${volume.name}" through a symlink`,
        );
      }
      await extractTar(tar, destination, { symlink: createSymlink });
    } catch (error) {
      await tar.cancel().catch(() => {});
      throw archiveError(error, volume);
    }
  }

  async getArchive(
    volume: VolumeHandle,
    paths?: readonly string[],
  ): Promise<ReadableStream<Uint8Array>> {
    this.#ensureOpen();
    const root = this.#volumeDir(volume);
    try {
      return await packDirectory(root, { paths });
    } catch (error) {
      throw archiveError(error, volume);
    }
  }

  async startSandbox(spec: TaskSpec): Promise<SandboxHandle> {
    this.#ensureOpen();
    this.#checkSpec(spec);
    const dir = joinPath(this.#workspace, `sandboxes/${await safeName(spec.id)}`);
    if (await Deno.lstat(dir).then(() => true, () => false)) {
      throw new DriverError("invalid", `a sandbox with ID "${spec.id}" already exists in this run`);
    }
    makeDirectory(dir);
    const dirRecord = this.record("dir", dir, { role: "sandbox", sandbox: spec.id });
    await this.#context.record(dirRecord);
    let group: LimitGroup | undefined;
    try {
      const prepared = await prepareTaskDir(
        spec.name,
        dir,
        spec.workDir,
        spec.mounts,
        (mount) => this.#mountTarget(mount),
      );
      group = await this.#limitGroup("sandbox", spec);
      const sandbox = new NativeSandbox(this, spec, dir, dirRecord, prepared.cwd, {
        ...this.#baseEnv,
        ...spec.env,
      }, group);
      this.#sandboxes.add(sandbox);
      return sandbox;
    } catch (error) {
      if (group !== undefined) await this.releaseGroup(group).catch(() => {});
      await this.#removeDir(dir, dirRecord, []);
      throw error;
    }
  }

  async close(): Promise<CleanupReport> {
    if (this.#closed) return { removed: [], failed: [] };
    this.#closed = true;
    this.#removed = [];
    const failed: { resource: ResourceRecord; reason: string }[] = [];
    const attempt = async (resource: ResourceRecord, work: () => Promise<void>) => {
      try {
        await work();
      } catch (error) {
        failed.push({ resource, reason: (error as Error).message });
      }
    };
    await Promise.all([...this.#sandboxes].map((sandbox) => sandbox.close()));
    await Promise.all([...this.#tasks.values()].map(async (state) => {
      await state.process.stop(0);
      await state.settled;
    }));
    for (const group of [...this.#groups]) {
      await this.releaseGroup(group).catch((error: Error) => {
        for (const resource of group.records) failed.push({ resource, reason: error.message });
      });
    }
    for (const failure of await this.#limits?.close() ?? []) failed.push(failure);
    for (const state of this.#tasks.values()) {
      if (state.removed) continue;
      state.removed = true;
      await attempt(
        state.dirRecord,
        () => this.#removeDir(state.dir, state.dirRecord, state.links),
      );
    }
    await this.#deletions;
    const volumes = await Promise.all(
      [...this.#volumes.values()].map((pending) => pending.catch(() => undefined)),
    );
    for (const record of volumes.map((entry) => entry?.record)) {
      if (record === undefined) continue;
      await attempt(record, async () => {
        await Deno.remove(record.id, { recursive: true }).catch(ignoreNotFound);
        await this.#forget(record);
      });
    }
    this.#volumes.clear();
    await attempt(this.#workspaceRecord, async () => {
      await Deno.remove(this.#workspace, { recursive: true }).catch(ignoreNotFound);
      await this.#forget(this.#workspaceRecord);
    });
    const removed = this.#removed;
    this.#removed = [];
    return { removed, failed };
  }

  // The methods below are for NativeSandbox, which shares the driver's bookkeeping.

  /** Records a process and forgets it once it finished; resolves after forgetting. */
  track(process: GroupProcess, detail: Record<string, string>): Promise<void> {
    return this.#track(process, detail);
  }

  async removeDirectory(
    dir: string,
    record: ResourceRecord,
    links: readonly string[],
  ): Promise<void> {
    await this.#removeDir(dir, record, links);
  }

  /** Removes a task's or sandbox's cgroups; tells whether the OOM killer struck. */
  async releaseGroup(group: LimitGroup): Promise<{ oomKilled: boolean }> {
    const result = await this.#limits!.release(group);
    this.#groups.delete(group);
    return result;
  }

  /** For a sandbox call killed by SIGKILL: whether the OOM killer did it. */
  async newOomKill(group: LimitGroup): Promise<boolean> {
    return await this.#limits!.newOomKill(group);
  }

  warn(message: string): void {
    this.#context.warn(message);
  }

  sandboxClosed(sandbox: NativeSandbox): void {
    this.#sandboxes.delete(sandbox);
  }

  ensureOpen(): void {
    this.#ensureOpen();
  }

  #track(process: GroupProcess, detail: Record<string, string>): Promise<void> {
    return (async () => {
      // Recorded at once; when the start time needs a round trip to the reader shell
      // (narrowed runner), the record is written again with it.
      const known = process.knownStartTime;
      const recordWith = (startTime: string | undefined) =>
        this.record("process", String(process.pid), {
          pgid: String(process.pid),
          ...detail,
          ...(startTime === undefined ? {} : { startTime }),
        });
      const record = recordWith(known);
      let recorded = true;
      try {
        await this.#context.record(record);
        if (known === undefined) {
          const startTime = await process.startTime();
          if (startTime !== undefined && !process.finished) {
            await this.#context.record(recordWith(startTime));
          }
        }
      } catch (error) {
        recorded = false;
        this.#context.warn(
          `could not record process ${process.pid} for gc: ${(error as Error).message}`,
        );
      }
      await process.wait();
      if (!recorded) return;
      try {
        await this.#forget(record);
      } catch (error) {
        this.#context.warn(
          `could not mark process ${process.pid} as gone: ${(error as Error).message}`,
        );
      }
    })();
  }

  async #limitGroup(role: "task" | "sandbox", spec: TaskSpec): Promise<LimitGroup | undefined> {
    if (!hasLimits(spec) || this.#limits === undefined) return undefined;
    const group = await this.#limits.create(role, spec.id, spec.limits!);
    this.#groups.add(group);
    return group;
  }

  /** The task's exit status, after its cgroup was read (OOM) and removed. */
  async #exitOf(process: GroupProcess, group: LimitGroup | undefined): Promise<ExitStatus> {
    const status = await process.wait();
    if (group === undefined) return status;
    try {
      const { oomKilled } = await this.releaseGroup(group);
      return oomKilled ? { ...status, oomKilled: true } : status;
    } catch (error) {
      this.#context.warn(
        `could not remove the cgroup of process ${process.pid}: ${(error as Error).message}`,
      );
      return status;
    }
  }

  #attach(id: string, state: TaskState, output: OutputSink): TaskHandle {
    state.process.addSink(output, true);
    return this.#handle(id, state);
  }

  #handle(id: string, state: TaskState): TaskHandle {
    return {
      id,
      wait: async (): Promise<ExitStatus> => {
        const status = await state.exit;
        await state.settled;
        return status;
      },
      stop: (graceMs: number) => state.process.stop(graceMs),
      remove: async (): Promise<void> => {
        await state.process.stop(0);
        await state.settled;
        if (state.removed) return;
        state.removed = true;
        this.#tasks.delete(id);
        await this.#removeDir(state.dir, state.dirRecord, state.links);
      },
    };
  }

  #checkSpec(spec: TaskSpec): void {
    if (spec.user !== undefined && spec.user !== "") {
      throw new UnsupportedError(
        "native",
        "user",
        `task "${spec.name}" asks to run as "${spec.user}"; native tasks run as the runner's user`,
      );
    }
    if (spec.privileged) {
      throw new UnsupportedError(
        "native",
        "privileged",
        `task "${spec.name}" asks for privileged mode; native tasks have the runner's privileges`,
      );
    }
    if (hasLimits(spec) && this.#limits === undefined) {
      throw new UnsupportedError(
        "native",
        "limits",
        `task "${spec.name}" sets CPU or memory limits, but ${this.#limitsUnavailable}`,
      );
    }
    if (spec.image !== undefined && !this.#warnedImage) {
      this.#warnedImage = true;
      this.#context.warn(
        `the native driver ignores images (task "${spec.name}" asked for "${spec.image}"); commands run with the host's programs`,
      );
    }
  }

  #volumeDir(volume: VolumeHandle): string {
    const root = volume.kind === "cache" ? this.#cacheRoot : joinPath(this.#workspace, "volumes");
    if (!isInside(root, volume.id) || volume.id === root) {
      throw new DriverError(
        "invalid",
        `volume "${volume.name}" was not created by this native driver; create it with createVolume`,
      );
    }
    return volume.id;
  }

  #mountTarget(mount: Mount): string {
    return this.#volumeDir(mount.volume);
  }

  /**
   * Removes a task's or sandbox's directory: its mount links first, then the directory is
   * moved into the workspace's trash (one rename) and its contents are deleted in the
   * background. Deleting even an empty directory waits for the disk on some hosts (0.2 to
   * 0.7 ms per rmdir measured on an ext4 root, against 15 µs for the rename), which would
   * otherwise add to every task. The record can go at once: the trash lies inside the
   * recorded workspace, so `gc` still finds it after a crash, and `close()` waits for the
   * deletions before it removes the workspace.
   */
  async #removeDir(dir: string, record: ResourceRecord, links: readonly string[]): Promise<void> {
    for (const link of links) removeLink(link);
    const parked = joinPath(this.#trash, String(++this.#trashed));
    if (moveDirectory(dir, parked)) this.#deleteLater(parked);
    else await Deno.remove(dir, { recursive: true }).catch(ignoreNotFound);
    await this.#forget(record);
  }

  #deleteLater(path: string): void {
    this.#deletions = this.#deletions
      .then(() => Deno.remove(path, { recursive: true }))
      .catch((error: Error) => {
        if (error instanceof Deno.errors.NotFound) return;
        this.#context.warn(
          `could not delete the finished task directory ${path} (removed with the workspace at the end of the run): ${error.message}`,
        );
      });
  }

  async #forget(record: ResourceRecord): Promise<void> {
    await this.#context.forget(record);
    this.#removed.push(record);
  }

  #ensureOpen(): void {
    if (this.#closed) {
      throw new DriverError(
        "invalid",
        "the native driver was closed; create a new one for another run",
      );
    }
  }
}

class NativeSandbox implements SandboxHandle {
  readonly id: string;
  readonly #driver: NativeDriver;
  readonly #spec: TaskSpec;
  readonly #dir: string;
  readonly #record: ResourceRecord;
  readonly #cwd: string;
  readonly #env: Readonly<Record<string, string>>;
  readonly #running = new Set<{ process: GroupProcess; settled: Promise<void> }>();
  readonly #group: LimitGroup | undefined;
  #closed = false;

  constructor(
    driver: NativeDriver,
    spec: TaskSpec,
    dir: string,
    record: ResourceRecord,
    cwd: string,
    env: Record<string, string>,
    group: LimitGroup | undefined,
  ) {
    this.id = spec.id;
    this.#group = group;
    this.#driver = driver;
    this.#spec = spec;
    this.#dir = dir;
    this.#record = record;
    this.#cwd = cwd;
    this.#env = env;
  }

  async exec(
    spec: ExecSpec,
    output: OutputSink,
    options: { readonly signal?: AbortSignal; readonly graceMs?: number } = {},
  ): Promise<ExitStatus> {
    if (this.#closed) {
      throw new DriverError("invalid", `sandbox "${this.#spec.name}" was closed; start a new one`);
    }
    this.#driver.ensureOpen();
    if (spec.user !== undefined && spec.user !== "") {
      throw new UnsupportedError(
        "native",
        "user",
        `sandbox "${this.#spec.name}" call asks for user "${spec.user}"`,
      );
    }
    if (spec.command.length === 0) {
      throw new DriverError("invalid", `sandbox "${this.#spec.name}": the command is empty`);
    }
    options.signal?.throwIfAborted();
    const cwd = await execWorkDir(this.#spec.name, this.#dir, this.#cwd, spec.workDir);
    if (this.#closed) {
      throw new DriverError("invalid", `sandbox "${this.#spec.name}" was closed; start a new one`);
    }
    this.#driver.ensureOpen();
    const process = GroupProcess.spawn({
      command: spec.command,
      cwd,
      env: { ...this.#env, ...spec.env },
      stdin: spec.stdin,
      cgroupProcs: this.#group?.procs,
      found: this.#driver.foundCommands,
    });
    process.addSink(output, false);
    const entry = { process, settled: this.#driver.track(process, { sandbox: this.id }) };
    this.#running.add(entry);
    const onAbort = () => void process.stop(options.graceMs ?? DEFAULT_GRACE_MS);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const status = await process.wait();
      await entry.settled;
      if (this.#group !== undefined && status.signal === 9) {
        const oomKilled = await this.#driver.newOomKill(this.#group).catch(() => false);
        if (oomKilled) return { ...status, oomKilled: true };
      }
      return status;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      this.#running.delete(entry);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const running = [...this.#running];
    await Promise.all(running.map(async (entry) => {
      await entry.process.stop(0);
      await entry.settled;
    }));
    if (this.#group !== undefined) {
      // On failure the driver's close() tries again and reports it.
      await this.#driver.releaseGroup(this.#group).catch((error: Error) =>
        this.#driver.warn(`could not remove the cgroup of sandbox "${this.id}": ${error.message}`)
      );
    }
    await this.#driver.removeDirectory(this.#dir, this.#record, []);
    this.#driver.sandboxClosed(this);
  }
}

function archiveError(error: unknown, volume: VolumeHandle): unknown {
  if (error instanceof ArchivePathError) {
    return new DriverError(
      error.reason === "not_found" ? "not_found" : "invalid",
      `volume "${volume.name}": ${error.message}`,
      { cause: error },
    );
  }
  if (error instanceof TarError) {
    return new DriverError("invalid", `volume "${volume.name}": ${error.message}`, {
      cause: error,
    });
  }
  return error;
}

function hasLimits(spec: TaskSpec): boolean {
  return spec.limits?.cpu !== undefined || spec.limits?.memoryBytes !== undefined;
}

// The helpers below make one synchronous system call each on purpose: on a task's
// hot path that is cheaper than a round trip through Deno's file-system thread pool, whose
// thread must first be scheduled (milliseconds on a busy host). Anything that could take
// long (removing a tree a task filled) stays asynchronous.

/** Creates a task's or sandbox's directory (and `tasks/` or `sandboxes/` the first time). */
function makeDirectory(dir: string): void {
  Deno.mkdirSync(dir, { recursive: true });
}

/** Removes a mount's symlink (not what it points to); a missing link is fine. */
function removeLink(link: string): void {
  try {
    Deno.removeSync(link);
  } catch {
    // Already gone, or the directory removal below reports the problem.
  }
}

/** Renames `dir` to `target` (same file system); false when that failed. */
function moveDirectory(dir: string, target: string): boolean {
  try {
    Deno.renameSync(dir, target);
    return true;
  } catch {
    return false;
  }
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}
