/**
 * The qemu driver: one local VM per run, booted at the first operation that needs it and
 * destroyed by `close()`. Commands run in the guest through the guest agent and the wrapper
 * (live output over 9p); volumes are host directories under the run's share and caches host
 * directories under the state directory, both exported over 9p and bind-mounted at the
 * task's paths in the guest; archives are read and written on the host side.
 *
 * @module
 */

import { extractTar, packDirectory } from "../archive/mod.ts";
import { joinPath, normalizeRelative } from "../archive/paths.ts";
import { TarError } from "../archive/tar_format.ts";
import {
  type CacheEntry,
  type CleanupReport,
  type Driver,
  type DriverContext,
  DriverError,
  type ExecSpec,
  type ExitStatus,
  type OutputSink,
  type ResourceRecord,
  type SandboxHandle,
  type TaskHandle,
  type TaskSpec,
  UnsupportedError,
  type VolumeHandle,
  type VolumeSpec,
} from "../contract.ts";
import { ArchivePathError } from "../archive/paths.ts";
import { cacheDir, cachesNamed, openCacheDir, touchCache } from "../native/caches.ts";
import { createSymlink, realInside, safeName } from "../native/layout.ts";
import { processStartTime } from "../native/proc_stat.ts";
import type { QemuConfig } from "./config.ts";
import { AGENT_TIMEOUT_MS, GuestCall } from "./guest_call.ts";
import { ensureImage, ubuntuImage } from "./image.ts";
import {
  cacheRoot,
  GUEST_CACHES,
  GUEST_SHARE,
  GUEST_WORK,
  GuestPaths,
  MARKER_FILE,
  planMounts,
  type PlannedMount,
  plannedWorkDir,
  shareDir,
} from "./layout.ts";
import { Machine } from "./machine.ts";
import { QEMU_CAPABILITIES } from "./capabilities.ts";
import { acquireSlot, slotRoot, tempDir } from "./vm_slots.ts";

const GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_GRACE_MS = 10_000;

/** Options beyond the DSN. */
export interface QemuDriverOptions {
  /** Receives boot progress lines (default: stderr when it is a terminal). */
  readonly progress?: (line: string) => void;
}

/** Creates a qemu driver bound to one run; the VM boots at the first operation needing it. */
export async function createQemuDriver(
  config: QemuConfig,
  context: DriverContext,
  options: QemuDriverOptions = {},
): Promise<Driver> {
  const share = shareDir(context.runDir);
  const caches = await cacheRoot(context.stateDir, context.namespace);
  const driver = new QemuDriver(
    config,
    context,
    share,
    caches,
    options.progress ?? terminalProgress,
  );
  await driver.init();
  return driver;
}

interface TaskState {
  readonly call: GuestCall;
  readonly base: string;
  readonly mounts: readonly PlannedMount[];
  readonly io?: string;
  removed: boolean;
}

class QemuDriver implements Driver {
  readonly name = "qemu" as const;
  readonly capabilities = QEMU_CAPABILITIES;
  readonly #config: QemuConfig;
  readonly #context: DriverContext;
  readonly #share: string;
  readonly #cacheRoot: string;
  readonly #paths: GuestPaths;
  readonly #progress: (line: string) => void;
  readonly #shareRecord: ResourceRecord;
  #vmDir: string | undefined;
  #vmDirRecord: ResourceRecord | undefined;
  #vmRecord: ResourceRecord | undefined;
  #machine: Promise<Machine> | undefined;
  readonly #tasks = new Map<string, TaskState>();
  readonly #sandboxes = new Set<QemuSandbox>();
  readonly #volumes = new Map<string, Promise<VolumeHandle>>();
  #calls = 0;
  #warnedImage = false;
  #closed = false;
  #removed: ResourceRecord[] = [];

  constructor(
    config: QemuConfig,
    context: DriverContext,
    share: string,
    caches: string,
    progress: (line: string) => void,
  ) {
    this.#config = config;
    this.#context = context;
    this.#share = share;
    this.#cacheRoot = caches;
    this.#paths = new GuestPaths(share, caches);
    this.#progress = progress;
    this.#shareRecord = this.record("dir", share, { role: "share" });
  }

  async init(): Promise<void> {
    await this.#context.record(this.#shareRecord);
    await Deno.mkdir(joinPath(this.#share, "volumes"), { recursive: true });
    await Deno.mkdir(joinPath(this.#share, "io"), { recursive: true });
    await Deno.writeTextFile(joinPath(this.#share, MARKER_FILE), this.#context.runId);
  }

  record(kind: ResourceRecord["kind"], id: string, detail: Record<string, string>): ResourceRecord {
    return {
      kind,
      id,
      driver: "qemu",
      runId: this.#context.runId,
      namespace: this.#context.namespace,
      createdAt: new Date().toISOString(),
      detail,
    };
  }

  /** The booted machine (booting it on first use). */
  machine(): Promise<Machine> {
    this.#ensureOpen();
    this.#machine ??= this.#boot();
    return this.#machine;
  }

  async #boot(): Promise<Machine> {
    this.#context.signal?.throwIfAborted();
    const dir = await acquireSlot(slotRoot(tempDir(), Deno.uid()), this.#context.runId);
    this.#vmDir = dir;
    this.#vmDirRecord = this.record("dir", dir, { role: "vm" });
    await this.#context.record(this.#vmDirRecord);
    await Deno.mkdir(this.#cacheRoot, { recursive: true });
    let base = this.#config.image;
    if (base === undefined && this.#config.kernel === undefined) {
      base = await ensureImage(this.#config.cacheDir, ubuntuImage(this.#config.arch), {
        progress: this.#progress,
        signal: this.#context.signal,
      });
    }
    const machine = await Machine.boot({
      config: this.#config,
      baseImage: base,
      dir,
      shares: [
        { tag: "pocketci", hostPath: this.#share, mountPoint: GUEST_SHARE },
        { tag: "pocketci-caches", hostPath: this.#cacheRoot, mountPoint: GUEST_CACHES },
      ],
      instanceId: `pocketci-${this.#context.runId}`,
      progress: this.#progress,
      signal: this.#context.signal,
      started: async (pid) => {
        const startTime = await processStartTime(pid);
        this.#vmRecord = this.record("vm", String(pid), {
          dir,
          ...(startTime === undefined ? {} : { startTime }),
        });
        await this.#context.record(this.#vmRecord);
      },
    });
    if (this.#closed) {
      await machine.shutdown();
      throw closedError();
    }
    return machine;
  }

  async startTask(spec: TaskSpec, output: OutputSink): Promise<TaskHandle> {
    this.#ensureOpen();
    const existing = this.#tasks.get(spec.id);
    if (existing !== undefined && !existing.removed) {
      existing.call.addSink(output, true);
      return this.#handle(spec.id, existing);
    }
    this.checkSpec(spec);
    const command = [...(spec.entrypoint ?? []), ...spec.command];
    if (command.length === 0) {
      throw new DriverError("invalid", `task "${spec.name}" has an empty command`);
    }
    const mounts = planMounts(spec.name, spec.mounts, this.#paths);
    const workDir = plannedWorkDir(spec.name, spec.workDir);
    const machine = await this.machine();
    const base = `${GUEST_WORK}/tasks/${await safeName(spec.id)}`;
    const io = machine.sharesMounted ? this.#paths.io(`t${++this.#calls}`) : undefined;
    const call = new GuestCall({ qga: machine.qga, io, name: spec.name }, true);
    call.addSink(output, false);
    const state: TaskState = { call, base, mounts, io: io?.host, removed: false };
    await call.start(
      { baseDir: base, workDir, createWorkDir: true, mounts, command },
      guestEnv(spec.env),
      spec.stdin,
    );
    this.#tasks.set(spec.id, state);
    return this.#handle(spec.id, state);
  }

  attachTask(id: string, output: OutputSink): Promise<TaskHandle | undefined> {
    const state = this.#tasks.get(id);
    if (state === undefined || state.removed) return Promise.resolve(undefined);
    state.call.addSink(output, true);
    return Promise.resolve(this.#handle(id, state));
  }

  #handle(id: string, state: TaskState): TaskHandle {
    return {
      id,
      wait: () => state.call.status,
      stop: (graceMs: number) => state.call.stop(graceMs),
      remove: async () => {
        await state.call.stop(0);
        if (state.removed) return;
        state.removed = true;
        this.#tasks.delete(id);
        await this.cleanGuestDir(state.base, state.mounts);
        if (state.io) await Deno.remove(state.io, { recursive: true }).catch(() => {});
      },
    };
  }

  /** Unmounts a task's or sandbox's bind mounts in the guest and removes its directory. */
  async cleanGuestDir(base: string, mounts: readonly PlannedMount[]): Promise<void> {
    if (this.#closed || this.#machine === undefined) return;
    const machine = await this.#machine;
    const targets = mounts.map((mount) =>
      mount.target.startsWith("/") ? mount.target : `${base}/${mount.target}`
    ).reverse();
    // Never through a mount: every bind mount is undone first, and the removal stays on the
    // guest's own file system (volumes are 9p, a different one) even if one was left.
    const script =
      'base=$1; shift; for t in "$@"; do umount "$t" 2>/dev/null; done; find "$base" -xdev -depth -delete 2>/dev/null; exit 0';
    try {
      const pid = await machine.qga.exec({
        path: "/bin/sh",
        args: ["-c", script, "pocketci-clean", base, ...targets],
        capture: false,
      }, AGENT_TIMEOUT_MS);
      for (let wait = 2; wait < 5000; wait *= 2) {
        if ((await machine.qga.execStatus(pid, AGENT_TIMEOUT_MS)).exited) return;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    } catch {
      // The VM goes away at close() anyway.
    }
  }

  checkSpec(spec: TaskSpec): void {
    if (spec.user !== undefined) {
      throw new UnsupportedError("qemu", "user", "commands run as root in the VM");
    }
    if (spec.privileged) throw new UnsupportedError("qemu", "privileged");
    if (spec.limits?.cpu !== undefined || spec.limits?.memoryBytes !== undefined) {
      throw new UnsupportedError(
        "qemu",
        "limits",
        "set memory= and cpus= on the driver for the whole VM",
      );
    }
    if (spec.image !== undefined && !this.#warnedImage) {
      this.#warnedImage = true;
      this.#context.warn(
        `the qemu driver ignores task images ("${spec.image}"): commands run in the VM's own system`,
      );
    }
  }

  async createVolume(spec: VolumeSpec): Promise<VolumeHandle> {
    this.#ensureOpen();
    if (spec.name === "") throw new DriverError("invalid", "a volume needs a non-empty name");
    const key = spec.kind === "cache" && spec.key !== undefined
      ? `cache:${spec.name}\u0000${spec.key}`
      : `${spec.kind}:${spec.name}`;
    const pending = this.#volumes.get(key);
    if (pending === undefined) {
      const created = this.#newVolume(spec);
      this.#volumes.set(key, created);
      created.catch(() => this.#volumes.delete(key));
      return await created;
    }
    const handle = await pending;
    if (spec.kind !== "cache") return handle;
    await touchCache(handle.id, spec.name, this.#context.runId, spec.key);
    return { ...handle, opened: "existing" };
  }

  async #newVolume(spec: VolumeSpec): Promise<VolumeHandle> {
    if (spec.kind === "cache") {
      if (spec.seed !== undefined && spec.seed.kind !== "cache") {
        throw new DriverError("invalid", "a cache can only be seeded from another cache");
      }
      const dir = await cacheDir(this.#cacheRoot, spec.name, spec.key);
      const seed = spec.seed === undefined ? undefined : this.#hostDir(spec.seed);
      const opened = await openCacheDir(this.#cacheRoot, dir, seed);
      await touchCache(dir, spec.name, this.#context.runId, spec.key);
      return {
        name: spec.name,
        kind: "cache",
        id: dir,
        ...(spec.key === undefined ? {} : { key: spec.key }),
        opened,
      };
    }
    const dir = joinPath(this.#share, `volumes/${await safeName(spec.name)}`);
    await Deno.mkdir(dir, { recursive: true });
    return { name: spec.name, kind: "volume", id: dir };
  }

  async listCaches(name: string): Promise<CacheEntry[]> {
    this.#ensureOpen();
    return await cachesNamed(this.#cacheRoot, name);
  }

  async removeVolume(volume: VolumeHandle): Promise<void> {
    this.#ensureOpen();
    if (volume.kind === "cache") return;
    const key = `volume:${volume.name}`;
    const known = await this.#volumes.get(key)?.catch(() => undefined);
    if (known === undefined || known.id !== volume.id) {
      throw new DriverError("not_found", `volume "${volume.name}" does not belong to this run`);
    }
    this.#volumes.delete(key);
    await Deno.remove(volume.id, { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }

  async putArchive(
    volume: VolumeHandle,
    tar: ReadableStream<Uint8Array>,
    path?: string,
  ): Promise<void> {
    this.#ensureOpen();
    const root = this.#hostDir(volume);
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
    const root = this.#hostDir(volume);
    try {
      return await packDirectory(root, { paths });
    } catch (error) {
      throw archiveError(error, volume);
    }
  }

  async startSandbox(spec: TaskSpec): Promise<SandboxHandle> {
    this.#ensureOpen();
    this.checkSpec(spec);
    const mounts = planMounts(spec.name, spec.mounts, this.#paths);
    const workDir = plannedWorkDir(spec.name, spec.workDir);
    const machine = await this.machine();
    const base = `${GUEST_WORK}/sandboxes/${await safeName(spec.id)}`;
    const prepare = new GuestCall(
      { qga: machine.qga, io: this.#io(machine), name: spec.name },
      false,
    );
    await prepare.start(
      { baseDir: base, workDir, createWorkDir: true, mounts, command: [] },
      guestEnv({}),
      undefined,
    );
    await prepare.status;
    const sandbox = new QemuSandbox(this, machine, spec, base, workDir, mounts);
    this.#sandboxes.add(sandbox);
    return sandbox;
  }

  /** A fresh I/O directory for a call, when the guest has the share. */
  io(machine: Machine): { host: string; guest: string } | undefined {
    return this.#io(machine);
  }

  #io(machine: Machine): { host: string; guest: string } | undefined {
    return machine.sharesMounted ? this.#paths.io(`c${++this.#calls}`) : undefined;
  }

  sandboxClosed(sandbox: QemuSandbox): void {
    this.#sandboxes.delete(sandbox);
  }

  get closed(): boolean {
    return this.#closed;
  }

  async close(): Promise<CleanupReport> {
    if (this.#closed) return { removed: [], failed: [] };
    this.#closed = true;
    this.#removed = [];
    const failed: { resource: ResourceRecord; reason: string }[] = [];
    const attempt = async (resource: ResourceRecord | undefined, work: () => Promise<void>) => {
      if (resource === undefined) return;
      try {
        await work();
        await this.#context.forget(resource);
        this.#removed.push(resource);
      } catch (error) {
        failed.push({ resource, reason: (error as Error).message });
      }
    };
    const machine = await this.#machine?.catch(() => undefined);
    const calls = [...this.#tasks.values()].map((task) => task.call);
    for (const sandbox of this.#sandboxes) calls.push(...sandbox.calls);
    for (const call of calls) call.abandon("the run is closing");
    if (machine !== undefined) {
      await attempt(this.#vmRecord, () => machine.shutdown());
    } else if (this.#vmRecord !== undefined) {
      // The boot failed: Machine.boot already killed QEMU.
      await attempt(this.#vmRecord, () => Promise.resolve());
    }
    await Promise.all(calls.map((call) => call.status));
    this.#tasks.clear();
    this.#sandboxes.clear();
    this.#volumes.clear();
    await attempt(this.#vmDirRecord, () => removeTree(this.#vmDir!));
    await attempt(this.#shareRecord, () => removeTree(this.#share));
    const removed = this.#removed;
    this.#removed = [];
    return { removed, failed };
  }

  #hostDir(volume: VolumeHandle): string {
    this.#paths.volume(volume); // refuses foreign handles
    return volume.id;
  }

  #ensureOpen(): void {
    if (this.#closed) throw closedError();
  }
}

class QemuSandbox implements SandboxHandle {
  readonly id: string;
  readonly #driver: QemuDriver;
  readonly #machine: Machine;
  readonly #spec: TaskSpec;
  readonly #base: string;
  readonly #workDir: string;
  readonly #mounts: readonly PlannedMount[];
  readonly #running = new Set<GuestCall>();
  #closed = false;

  constructor(
    driver: QemuDriver,
    machine: Machine,
    spec: TaskSpec,
    base: string,
    workDir: string,
    mounts: readonly PlannedMount[],
  ) {
    this.id = spec.id;
    this.#driver = driver;
    this.#machine = machine;
    this.#spec = spec;
    this.#base = base;
    this.#workDir = workDir;
    this.#mounts = mounts;
  }

  get calls(): GuestCall[] {
    return [...this.#running];
  }

  async exec(
    spec: ExecSpec,
    output: OutputSink,
    options: { readonly signal?: AbortSignal; readonly graceMs?: number } = {},
  ): Promise<ExitStatus> {
    if (this.#closed || this.#driver.closed) {
      throw new DriverError("invalid", `sandbox "${this.#spec.name}" is closed`);
    }
    if (spec.user !== undefined) {
      throw new UnsupportedError("qemu", "user", "commands run as root in the VM");
    }
    if (spec.command.length === 0) {
      throw new DriverError("invalid", `sandbox "${this.#spec.name}": empty command`);
    }
    const io = this.#driver.io(this.#machine);
    const call = new GuestCall({ qga: this.#machine.qga, io, name: this.#spec.name }, false);
    call.addSink(output, false);
    this.#running.add(call);
    try {
      const workDir = spec.workDir === undefined
        ? this.#workDir
        : plannedWorkDir(this.#spec.name, spec.workDir);
      await call.start(
        { baseDir: this.#base, workDir, createWorkDir: false, mounts: [], command: spec.command },
        guestEnv({ ...this.#spec.env, ...spec.env }),
        spec.stdin,
      );
      const abort = () => void call.stop(options.graceMs ?? DEFAULT_GRACE_MS);
      options.signal?.addEventListener("abort", abort, { once: true });
      if (options.signal?.aborted) abort();
      try {
        return await call.status;
      } finally {
        options.signal?.removeEventListener("abort", abort);
      }
    } finally {
      this.#running.delete(call);
      if (io) await Deno.remove(io.host, { recursive: true }).catch(() => {});
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#running].map((call) => call.stop(0)));
    await this.#driver.cleanGuestDir(this.#base, this.#mounts);
    this.#driver.sandboxClosed(this);
  }
}

/** The complete environment of a guest command: PATH and HOME, then the task's own. */
function guestEnv(env: Readonly<Record<string, string>>): string[] {
  return Object.entries({ PATH: GUEST_PATH, HOME: "/root", ...env }).map(([k, v]) => `${k}=${v}`);
}

function closedError(): DriverError {
  return new DriverError("invalid", "the qemu driver was closed");
}

async function removeTree(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
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

let terminal: boolean | undefined;
function terminalProgress(line: string): void {
  if (terminal === undefined) {
    try {
      terminal = Deno.stderr.isTerminal();
    } catch {
      terminal = false;
    }
  }
  if (terminal) Deno.stderr.writeSync(new TextEncoder().encode(`${line}\n`));
}
