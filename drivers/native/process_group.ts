/**
 * A host process started as the leader of its own session and process group
 * (`setsid`, via `Deno.Command`'s `detached: true`), so it can be signalled together
 * with every child it forks. Its stdout and stderr are pumped separately to sinks as
 * they arrive and kept in a bounded replay buffer.
 *
 * When the leader exits, whatever is left in its group is killed, as when the main
 * process of a container exits. A child that starts a new session of its own
 * escapes the group; that is the limit of process-group isolation.
 *
 * @module
 */

import { DriverError, type ExitStatus, type OutputSink } from "../contract.ts";
import { ReplayBuffer } from "./replay_buffer.ts";
import { SHELL } from "./shell.ts";
import { processStartTime, startTimeSync, statFields } from "./proc_stat.ts";

/** How to start a process. */
export interface GroupProcessOptions {
  /** argv; index 0 is looked up on `env.PATH` (relative paths against `cwd`). */
  readonly command: readonly string[];
  /** Working directory; must exist. */
  readonly cwd: string;
  /** The complete environment (nothing is inherited). */
  readonly env: Readonly<Record<string, string>>;
  /** Bytes for standard input, which is then closed; absent means /dev/null. */
  readonly stdin?: Uint8Array;
  /**
   * `cgroup.procs` files the process joins before it runs the command (resource
   * limits): it starts as `/bin/sh`, writes its PID to each and then execs the
   * command, so the command never runs outside its cgroups.
   */
  readonly cgroupProcs?: readonly string[];
  /**
   * Where commands found before are remembered (one map per driver instance): a name on
   * an all-absolute PATH, or an absolute path, is looked up once per run instead of
   * once per task (a stat per PATH entry tried).
   */
  readonly found?: Map<string, string>;
}

/**
 * Joins the cgroups named by `$1` files `$2...`, then execs the rest of the arguments.
 * The arguments are never interpolated into the script.
 */
const JOIN_SCRIPT = `n=$1; shift
while [ "$n" -gt 0 ]; do
  if ! echo $$ > "$1"; then echo "pocketci: cannot join the cgroup $1" >&2; exit 125; fi
  shift; n=$((n-1))
done
exec "$@"`;

const POLL_MS = 20;
/** How long output may still flow after the group was killed before the pipes are cut. */
const DRAIN_MS = 2000;
/** How often the shared watchdog looks for groups whose pipes stayed open too long. */
const DRAIN_CHECK_MS = 250;
const IS_LINUX = Deno.build.os === "linux";

/** A running (or finished) process group. */
export class GroupProcess {
  /** The leader's pid, which is also the process group ID. */
  readonly pid: number;
  readonly #child: Deno.ChildProcess;
  readonly #sinks = new Set<OutputSink>();
  readonly #replay = new ReplayBuffer();
  readonly #readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
  readonly #finished: Promise<ExitStatus>;
  #stopping = false;
  #leaderExited = false;
  #done = false;
  readonly #startTime: string | undefined;
  /** Registered with the drain watchdog once the group was killed, until drained. */
  #draining: Drain | undefined;
  #expire: (complete: false) => void = () => {};
  /** Resolves false when the pipes stayed open for DRAIN_MS after the group was killed. */
  readonly #drainExpired = new Promise<false>((resolve) => this.#expire = resolve);

  private constructor(child: Deno.ChildProcess, stdin: Uint8Array | undefined) {
    this.#child = child;
    this.pid = child.pid;
    this.#startTime = startTimeSync(child.pid);
    if (stdin !== undefined) void this.#feed(stdin);
    const pumps = [this.#pump("stdout", child.stdout), this.#pump("stderr", child.stderr)];
    this.#finished = this.#finish(pumps);
  }

  /**
   * Starts a process in a new process group. Throws a {@link DriverError} with code
   * `command_not_found` when the executable cannot be found or run.
   */
  static spawn(options: GroupProcessOptions): GroupProcess {
    const [executable, ...args] = options.command;
    if (executable === undefined || executable === "") {
      throw new DriverError("invalid", "the command is empty; give at least the program to run");
    }
    const found = findExecutable(executable, options.env.PATH, options.cwd, options.found);
    if (found.kind === "missing") throw notFound(executable);
    if (found.kind === "not_executable") throw notExecutable(executable);
    // `setsid PROGRAM` (no fork: our child is never a group leader) gives the same new
    // session and group as `detached: true`, whose status Deno reports ~1.5 ms later.
    const wrapper = found.kind === "found" ? setsidBinary() : undefined;
    let program = found.path ?? executable;
    let programArgs = args;
    if (options.cgroupProcs !== undefined && options.cgroupProcs.length > 0) {
      programArgs = [
        "-c",
        JOIN_SCRIPT,
        "pocketci-join",
        String(options.cgroupProcs.length),
        ...options.cgroupProcs,
        program,
        ...args,
      ];
      program = SHELL;
    }
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(wrapper ?? program, {
        args: wrapper === undefined ? programArgs : [program, ...programArgs],
        cwd: options.cwd,
        env: { ...options.env },
        clearEnv: true,
        detached: wrapper === undefined,
        stdin: options.stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw notFound(executable, error);
      if (error instanceof Deno.errors.PermissionDenied) throw notExecutable(executable, error);
      throw new DriverError(
        "failed",
        `could not start "${executable}": ${(error as Error).message}`,
        { cause: error },
      );
    }
    return new GroupProcess(child, options.stdin);
  }

  /**
   * Adds a sink. With `replay`, everything recorded so far is delivered first, so the
   * sink sees the whole output in order.
   */
  addSink(sink: OutputSink, replay: boolean): void {
    if (replay) {
      for (const { stream, chunk } of this.#replay.chunks()) safeCall(sink, stream, chunk);
    }
    if (!this.#done) this.#sinks.add(sink);
  }

  /** Resolves once the process exited and all its output was delivered. */
  wait(): Promise<ExitStatus> {
    return this.#finished;
  }

  /** True once `wait()` has resolved. */
  get finished(): boolean {
    return this.#done;
  }

  /**
   * The kernel's start time of the leader (Linux), to recognise this process later:
   * read as it was spawned when Deno may read /proc, else asked of the reader shell
   * (undefined when the leader already exited and was reaped).
   */
  async startTime(): Promise<string | undefined> {
    return this.#startTime ?? await processStartTime(this.pid);
  }

  /** The leader's start time when it was read as the process was spawned. */
  get knownStartTime(): string | undefined {
    return this.#startTime;
  }

  /**
   * SIGTERM to the whole group, then SIGKILL once `graceMs` passed with anything in
   * the group still alive. Resolves when the process has finished.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.#done) return;
    this.#stopping = true;
    if (graceMs > 0) {
      signalGroup(this.pid, "SIGTERM");
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline) {
        if (this.#leaderExited && !(await groupAlive(this.pid))) break;
        await delay(Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
      }
    }
    if (!this.#leaderExited || await groupAlive(this.pid)) signalGroup(this.pid, "SIGKILL");
    this.#markKilled();
    await this.#finished;
  }

  async #finish(pumps: Promise<void>[]): Promise<ExitStatus> {
    const status = await this.#child.status;
    this.#leaderExited = true;
    if (!this.#stopping) {
      signalGroup(this.pid, "SIGKILL");
      this.#markKilled();
    }
    const drained = Promise.all(pumps).then(() => true);
    const complete = await Promise.race([drained, this.#drainExpired]);
    if (this.#draining !== undefined) draining.delete(this.#draining);
    if (!complete) {
      // A process that left the group (setsid) still holds the pipes: stop reading.
      signalGroup(this.pid, "SIGKILL");
      await Promise.all(this.#readers.map((reader) => reader.cancel().catch(() => {})));
      await drained.catch(() => {});
    }
    this.#done = true;
    this.#sinks.clear();
    return toExitStatus(status);
  }

  /** Starts the drain deadline: the pipes get DRAIN_MS more to reach their end. */
  #markKilled(): void {
    if (this.#draining !== undefined || this.#done) return;
    this.#draining = { deadline: Date.now() + DRAIN_MS, expire: () => this.#expire(false) };
    watchDrain(this.#draining);
  }

  async #pump(stream: "stdout" | "stderr", source: ReadableStream<Uint8Array>): Promise<void> {
    // The reader keeps its lock: the stream is not used once it ended or was cancelled.
    const reader = source.getReader();
    this.#readers.push(reader);
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) return;
        this.#replay.push(stream, value);
        for (const sink of this.#sinks) safeCall(sink, stream, value);
      }
    } catch {
      // The pipe was cancelled after the group was killed; nothing more will come.
    }
  }

  async #feed(stdin: Uint8Array): Promise<void> {
    const writer = this.#child.stdin.getWriter();
    try {
      await writer.write(stdin);
      await writer.close();
    } catch {
      // The process exited or closed its stdin without reading everything.
      await writer.abort().catch(() => {});
    }
  }
}

/** A killed group whose pipes may stay open until `deadline` (ms since the epoch). */
interface Drain {
  readonly deadline: number;
  readonly expire: () => void;
}

/**
 * Groups waiting for their pipes to end. One watchdog timer serves them all, instead of
 * a timer per task; it stops itself once none is left, and never keeps Deno alive.
 */
const draining = new Set<Drain>();
let watchdog: ReturnType<typeof setInterval> | undefined;

function watchDrain(drain: Drain): void {
  draining.add(drain);
  if (watchdog !== undefined) return;
  const timer = setInterval(() => {
    const now = Date.now();
    for (const entry of draining) {
      if (entry.deadline > now) continue;
      draining.delete(entry);
      entry.expire();
    }
    if (draining.size === 0) {
      clearInterval(timer);
      watchdog = undefined;
    }
  }, DRAIN_CHECK_MS);
  Deno.unrefTimer(timer);
  watchdog = timer;
}

/**
 * {@link lookupExecutable} through `cache`: only successful lookups are kept, and only
 * when they cannot depend on the working directory (an absolute path, or a name on a
 * PATH of absolute directories). A command installed or removed during the run is not
 * noticed; a removed one then fails to start with setsid's exit code 127.
 */
function findExecutable(
  name: string,
  path: string | undefined,
  cwd: string,
  cache: Map<string, string> | undefined,
): LookupResult {
  const key = cache === undefined ? undefined : lookupKey(name, path);
  const known = key === undefined ? undefined : cache!.get(key);
  if (known !== undefined) return { kind: "found", path: known };
  const found = lookupExecutable(name, path, cwd);
  if (key !== undefined && found.kind === "found") cache!.set(key, found.path);
  return found;
}

function lookupKey(name: string, path: string | undefined): string | undefined {
  if (name.startsWith("/")) return `\0${name}`;
  if (name.includes("/") || path === undefined) return undefined;
  return path.split(":").every((dir) => dir.startsWith("/")) ? `${path}\0${name}` : undefined;
}

/** The outcome of looking a command up. */
export type LookupResult =
  | { readonly kind: "found"; readonly path: string }
  | { readonly kind: "missing" }
  | { readonly kind: "not_executable" }
  | { readonly kind: "unknown"; readonly path?: undefined };

/**
 * Finds `name` the way a shell would: a name with a slash is a path (relative to
 * `cwd`), otherwise the first executable file of that name in the directories of
 * `path` (an empty entry meaning `cwd`). `unknown` when a directory could not be read
 * (no permission, a relative entry): Deno then looks it up itself.
 */
export function lookupExecutable(
  name: string,
  path: string | undefined,
  cwd: string,
): LookupResult {
  if (name.includes("/")) {
    const full = name.startsWith("/") ? name : `${cwd}/${name}`;
    const info = statOrError(full);
    if (info === "missing") return { kind: "missing" };
    if (info === "unknown") return { kind: "unknown" };
    return info.isFile && executable(info)
      ? { kind: "found", path: full }
      : { kind: "not_executable" };
  }
  if (path === undefined) return { kind: "unknown" };
  let sawNonExecutable = false;
  for (const dir of path.split(":")) {
    const base = dir === "" || dir === "." ? cwd : dir;
    if (!base.startsWith("/")) return { kind: "unknown" };
    const info = statOrError(`${base}/${name}`);
    if (info === "unknown") return { kind: "unknown" };
    if (info === "missing" || info.isDirectory) continue;
    if (executable(info)) return { kind: "found", path: `${base}/${name}` };
    sawNonExecutable = true;
  }
  return { kind: sawNonExecutable ? "not_executable" : "missing" };
}

function statOrError(path: string): Deno.FileInfo | "missing" | "unknown" {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return "missing";
    }
    return "unknown";
  }
}

function executable(info: Deno.FileInfo): boolean {
  return info.mode === null || (info.mode & 0o111) !== 0;
}

let setsid: string | null | undefined;

/** The host's `setsid` program (Linux util-linux), or undefined. */
function setsidBinary(): string | undefined {
  if (setsid === undefined) {
    setsid = null;
    if (Deno.build.os === "linux") {
      for (const candidate of ["/usr/bin/setsid", "/bin/setsid"]) {
        const info = statOrError(candidate);
        if (typeof info === "object" && info.isFile && executable(info)) {
          setsid = candidate;
          break;
        }
      }
    }
  }
  return setsid ?? undefined;
}

function notFound(executable: string, cause?: unknown): DriverError {
  return new DriverError(
    "command_not_found",
    `command "${executable}" not found on PATH (the native driver runs host programs; install it or give its path)`,
    { cause },
  );
}

function notExecutable(executable: string, cause?: unknown): DriverError {
  return new DriverError(
    "command_not_found",
    `command "${executable}" cannot be executed (permission denied); check that it is an executable file`,
    { cause },
  );
}

/** Converts Deno's status to the contract's: 128+N for a signal death. */
export function toExitStatus(status: Deno.CommandStatus): ExitStatus {
  if (status.signal === null) return { code: status.code };
  const number = SIGNAL_NUMBERS[status.signal] ??
    (status.code > 128 ? status.code - 128 : undefined);
  if (number === undefined) return { code: status.code === 0 ? 128 : status.code };
  return { code: 128 + number, signal: number };
}

const SIGNAL_NUMBERS: Partial<Record<Deno.Signal, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  ...(Deno.build.os === "linux"
    ? { SIGBUS: 7, SIGUSR1: 10, SIGUSR2: 12, SIGXCPU: 24, SIGXFSZ: 25 }
    : { SIGBUS: 10, SIGUSR1: 30, SIGUSR2: 31, SIGXCPU: 24, SIGXFSZ: 25 }),
};

/** Sends `signal` to process group `pgid`; a group that is already gone is not an error. */
export function signalGroup(pgid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pgid, signal);
  } catch {
    // ESRCH: nothing left in the group.
  }
}

/**
 * True while any live process is in group `pgid`. On Linux this reads /proc when
 * allowed, because zombies not yet reaped would otherwise count as alive; Deno grants
 * /proc only with --allow-all, so otherwise (and off Linux) it probes with SIGCONT,
 * which does not disturb a running process but counts unreaped zombies too.
 */
export async function groupAlive(pgid: number): Promise<boolean> {
  if (IS_LINUX && procReadable !== false) {
    try {
      for await (const entry of Deno.readDir("/proc")) {
        procReadable = true;
        if (!/^\d+$/.test(entry.name)) continue;
        const fields = await statFields(Number(entry.name));
        if (fields !== undefined && fields[2] === String(pgid) && fields[0] !== "Z") return true;
      }
      return false;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotCapable)) throw error;
      procReadable = false;
    }
  }
  try {
    Deno.kill(-pgid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

let procReadable: boolean | undefined;

function safeCall(sink: OutputSink, stream: "stdout" | "stderr", chunk: Uint8Array): void {
  try {
    sink(stream, chunk);
  } catch {
    // A failing sink must not stop the output of the others.
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
