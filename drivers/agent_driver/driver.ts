/**
 * A driver that runs everything through the PocketCI guest agent (`agent/`): tasks and
 * sandbox calls are agent execs with live output, stop is SIGTERM then SIGKILL to the
 * process group, volumes are directories under the machine's shared volumes directory
 * (mounted into a task as symlinks from its fresh directory), archives move as tar through
 * the agent's put and get. The machine underneath (an Apple VZ VM, a QEMU VM, the host in
 * tests) is booted lazily by a {@link MachineBooter}.
 *
 * @module
 */

import {
  type CleanupReport,
  type Driver,
  type DriverCapabilities,
  type DriverContext,
  DriverError,
  type DriverName,
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
import { safeName } from "../native/layout.ts";
import type { AgentExec } from "../agent_client/client.ts";
import type { AgentMachine, MachineBooter } from "./machine.ts";
import {
  checkMounts,
  DEFAULT_PATH,
  layOut,
  relativeInside,
  resolveWorkDir,
  taskDirName,
} from "./layout.ts";
import { AgentTask, OutputFan, stopExec } from "./task.ts";

/** What an agent-run machine honours: live, separate streams; no images, users or limits. */
export const AGENT_CAPABILITIES: DriverCapabilities = Object.freeze({
  liveStreaming: true,
  separateStderr: true,
  stdin: true,
  sandboxes: true,
  user: false,
  privileged: false,
  limits: false,
  caches: false,
  images: false,
});

/** How long `close()` waits for killed commands to report their exit. */
const CLOSE_WAIT_MS = 5000;

/** Options for {@link createAgentDriver}. */
export interface AgentDriverOptions {
  /** The driver's name (`vz`, or the name a test gives). */
  readonly name: DriverName;
  /** Boots the machine at the first operation that needs it. */
  readonly boot: MachineBooter;
  /** The run's context. */
  readonly context: DriverContext;
}

/** Creates a driver bound to one run. */
export function createAgentDriver(options: AgentDriverOptions): Driver {
  return new AgentDriver(options);
}

interface Running {
  readonly exec: AgentExec;
  readonly status: Promise<ExitStatus>;
}

class AgentDriver implements Driver {
  readonly name: DriverName;
  readonly capabilities = AGENT_CAPABILITIES;
  readonly #boot: MachineBooter;
  readonly #context: DriverContext;
  #machine: Promise<AgentMachine> | undefined;
  readonly #tasks = new Map<string, AgentTask>();
  readonly #running = new Set<Running>();
  readonly #dirs = new Set<string>();
  readonly #volumes = new Map<string, { handle: VolumeHandle; record: ResourceRecord }>();
  #warnedImage = false;
  #closed = false;

  constructor(options: AgentDriverOptions) {
    this.name = options.name;
    this.#boot = options.boot;
    this.#context = options.context;
  }

  async startTask(spec: TaskSpec, output: OutputSink): Promise<TaskHandle> {
    this.#check(spec);
    if (spec.command.length === 0 || spec.command[0] === "") {
      throw new DriverError("invalid", "the command is empty; give at least the program to run");
    }
    const machine = await this.#ready();
    const dir = `${machine.tasksDir}/${taskDirName(spec.id)}`;
    this.#dirs.add(dir);
    const remove = () => this.#removeDir(machine, dir);
    try {
      const cwd = await layOut(machine.client, dir, this.#mountTargets(spec), spec.workDir);
      const fan = new OutputFan();
      fan.add(output, false);
      const exec = await machine.client.exec({
        argv: spec.command,
        env: taskEnv(spec.env),
        workDir: cwd,
        ...(spec.stdin === undefined ? {} : { stdin: spec.stdin }),
      }, fan.sink);
      const task = new AgentTask(spec.id, exec, fan, async () => {
        this.#tasks.delete(spec.id);
        await remove();
      });
      this.#track(exec, task.wait());
      this.#tasks.set(spec.id, task);
      return task;
    } catch (error) {
      await remove().catch(() => {});
      throw error;
    }
  }

  attachTask(id: string, output: OutputSink): Promise<TaskHandle | undefined> {
    const task = this.#tasks.get(id);
    if (task === undefined) return Promise.resolve(undefined);
    task.output.add(output, true);
    return Promise.resolve({
      id,
      wait: () => task.wait(),
      stop: (graceMs: number) => task.stop(graceMs),
      remove: () => task.remove(),
    });
  }

  async createVolume(spec: VolumeSpec): Promise<VolumeHandle> {
    this.#open();
    if (spec.kind === "cache") {
      throw new UnsupportedError(
        this.name,
        "caches",
        "the VM's disk does not outlive the run; use a volume",
      );
    }
    const known = this.#volumes.get(spec.name);
    if (known !== undefined) return known.handle;
    const machine = await this.#ready();
    const id = `${machine.volumesDir}/${await safeName(spec.name)}`;
    await machine.client.fs({ op: "mkdir", path: id });
    const handle: VolumeHandle = { name: spec.name, kind: "volume", id };
    const record: ResourceRecord = {
      kind: "volume",
      id,
      driver: this.name,
      runId: this.#context.runId,
      namespace: this.#context.namespace,
      createdAt: new Date().toISOString(),
    };
    await this.#context.record(record);
    this.#volumes.set(spec.name, { handle, record });
    return handle;
  }

  async removeVolume(volume: VolumeHandle): Promise<void> {
    const known = this.#volumes.get(volume.name);
    if (known === undefined || known.handle.id !== volume.id) return;
    const machine = await this.#ready();
    await machine.client.fs({ op: "remove", path: volume.id });
    this.#volumes.delete(volume.name);
    await this.#context.forget(known.record);
  }

  async putArchive(
    volume: VolumeHandle,
    tar: ReadableStream<Uint8Array>,
    path?: string,
  ): Promise<void> {
    const machine = await this.#ready();
    const relative = path === undefined ? "" : relativeInside(path, "archive path");
    await machine.client.put(
      relative === "" ? this.#volumeDir(volume) : `${volume.id}/${relative}`,
      tar,
    );
  }

  async getArchive(
    volume: VolumeHandle,
    paths?: readonly string[],
  ): Promise<ReadableStream<Uint8Array>> {
    const machine = await this.#ready();
    return await machine.client.get(this.#volumeDir(volume), paths);
  }

  async startSandbox(spec: TaskSpec): Promise<SandboxHandle> {
    this.#check(spec);
    const machine = await this.#ready();
    const dir = `${machine.tasksDir}/${taskDirName(spec.id)}`;
    this.#dirs.add(dir);
    const cwd = await layOut(machine.client, dir, this.#mountTargets(spec), spec.workDir).catch(
      async (error) => {
        await this.#removeDir(machine, dir).catch(() => {});
        throw error;
      },
    );
    const calls = new Set<Running>();
    let closed = false;
    return {
      id: spec.id,
      exec: async (
        call: ExecSpec,
        output: OutputSink,
        options: { readonly signal?: AbortSignal; readonly graceMs?: number } = {},
      ): Promise<ExitStatus> => {
        if (closed || this.#closed) {
          throw new DriverError("unavailable", `sandbox ${spec.id} is closed`);
        }
        if (call.user !== undefined) {
          throw new UnsupportedError(this.name, "user", "commands run as the agent's user");
        }
        const exec = await machine.client.exec({
          argv: call.command,
          env: taskEnv({ ...spec.env, ...(call.env ?? {}) }),
          workDir: call.workDir === undefined ? cwd : resolveWorkDir(dir, call.workDir),
          ...(call.stdin === undefined ? {} : { stdin: call.stdin }),
        }, output);
        const status = exec.wait();
        const running = this.#track(exec, status);
        calls.add(running);
        const onAbort = () => void stopExec(exec, status, options.graceMs ?? 0);
        options.signal?.addEventListener("abort", onAbort, { once: true });
        if (options.signal?.aborted) onAbort();
        try {
          return await status;
        } finally {
          options.signal?.removeEventListener("abort", onAbort);
          calls.delete(running);
        }
      },
      close: async (): Promise<void> => {
        if (closed) return;
        closed = true;
        await Promise.all([...calls].map((call) => stopExec(call.exec, call.status, 0)));
        await this.#removeDir(machine, dir).catch(() => {});
      },
    };
  }

  async close(): Promise<CleanupReport> {
    if (this.#closed || this.#machine === undefined) {
      this.#closed = true;
      return { removed: [], failed: [] };
    }
    this.#closed = true;
    const removed: ResourceRecord[] = [];
    const failed: { resource: ResourceRecord; reason: string }[] = [];
    let machine: AgentMachine;
    try {
      machine = await this.#machine;
    } catch {
      return { removed, failed };
    }
    const running = [...this.#running];
    await Promise.all(running.map((run) => run.exec.kill("SIGKILL").catch(() => {})));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled(running.map((run) => run.status)),
      new Promise((resolve) => timer = setTimeout(resolve, CLOSE_WAIT_MS)),
    ]);
    clearTimeout(timer);
    for (const dir of this.#dirs) {
      await machine.client.fs({ op: "remove", path: dir }).catch(() => {});
    }
    for (const { record } of this.#volumes.values()) {
      try {
        await machine.client.fs({ op: "remove", path: record.id });
        await this.#context.forget(record);
        removed.push(record);
      } catch (error) {
        failed.push({ resource: record, reason: (error as Error).message });
      }
    }
    this.#volumes.clear();
    this.#tasks.clear();
    failed.push(...await machine.close());
    const machineFailed = new Set(failed.map((f) => f.resource));
    removed.push(...machine.resources.filter((resource) => !machineFailed.has(resource)));
    return { removed, failed };
  }

  #open(): void {
    if (this.#closed) {
      throw new DriverError("unavailable", `the ${this.name} driver was closed; start a new run`);
    }
  }

  #check(spec: TaskSpec): void {
    this.#open();
    if (spec.user !== undefined) {
      throw new UnsupportedError(this.name, "user", "commands run as the agent's user");
    }
    if (spec.privileged) {
      throw new UnsupportedError(this.name, "privileged", "there is no container to privilege");
    }
    if (
      spec.limits !== undefined &&
      (spec.limits.cpu !== undefined || spec.limits.memoryBytes !== undefined)
    ) {
      throw new UnsupportedError(this.name, "limits", "size the VM with memory= and cpus= instead");
    }
    checkMounts(this.name, spec.mounts);
    if (spec.image !== undefined && !this.#warnedImage) {
      this.#warnedImage = true;
      this.#context.warn(
        `the ${this.name} driver ignores task images ("${spec.image}"): commands run in the VM's own system`,
      );
    }
  }

  #ready(): Promise<AgentMachine> {
    this.#open();
    if (this.#machine === undefined) {
      this.#machine = this.#boot(this.#context.signal);
      this.#machine.catch(() => {});
    }
    return this.#machine;
  }

  #volumeDir(volume: VolumeHandle): string {
    const known = this.#volumes.get(volume.name);
    if (known === undefined || known.handle.id !== volume.id) {
      throw new DriverError("not_found", `volume "${volume.name}" does not exist in this run`);
    }
    return volume.id;
  }

  #mountTargets(spec: TaskSpec): { path: string; target: string }[] {
    return spec.mounts.map((mount) => ({
      path: mount.path,
      target: this.#volumeDir(mount.volume),
    }));
  }

  #track(exec: AgentExec, status: Promise<ExitStatus>): Running {
    const running: Running = { exec, status };
    this.#running.add(running);
    status.then(() => this.#running.delete(running), () => this.#running.delete(running));
    return running;
  }

  async #removeDir(machine: AgentMachine, dir: string): Promise<void> {
    await machine.client.fs({ op: "remove", path: dir });
    this.#dirs.delete(dir);
  }
}

/** The task's environment plus a PATH when it has none (and nothing else of the agent's). */
function taskEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  return { PATH: DEFAULT_PATH, ...env };
}
