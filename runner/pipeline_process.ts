/**
 * The runner's end of the pipeline process: a `deno run` of `pipeline_main.ts`
 * holding only the pipeline's permissions, a heap limit, no configuration, no
 * lockfile and no network for module loading. It answers the process's RPC calls
 * (over a unix socket in a private directory) with a {@link PipelineHost}, turns
 * whatever the process writes to stdout/stderr into log lines, and turns every way
 * the process can misbehave (an invalid message, an exit, a crash, running out of
 * memory) into a one-line pipeline failure.
 *
 * @module
 */

import type { PipelineHost } from "../dsl/host.ts";
import type { OutputCallback } from "../dsl/types.ts";
import type { ResourceHint } from "../dsl/pipeline.ts";
import type { PermissionNeed } from "../drivers/contract.ts";
import { permissionFlags } from "../drivers/permissions.ts";
import { toFileUrl } from "./file_url.ts";
import { dslImportMapUrl } from "./import_map.ts";
import {
  encodeFrame,
  FrameReader,
  type PipelineMessage,
  ProtocolError,
  type RunnerMessage,
  toWireError,
  validatePipelineMessage,
  type WireContext,
  type WireError,
} from "./rpc.ts";
import { escapingSymlinks } from "./symlink_escapes.ts";
import { PIPELINE_ENV_NAMES, SOCKET_NAME } from "./pipeline_names.ts";

export { PIPELINE_ENV_NAMES, SOCKET_NAME };

/** Deno permissions for pipeline code (`false`: none; `true`: all; a list: those). */
export interface PipelinePermissions {
  /** File reads. */
  readonly read: boolean | readonly string[];
  /** File writes. */
  readonly write: boolean | readonly string[];
  /** Network. */
  readonly net: boolean | readonly string[];
  /** Environment variables. */
  readonly env: boolean | readonly string[];
  /** Subprocesses. */
  readonly run: boolean | readonly string[];
  /** Foreign functions. */
  readonly ffi: boolean | readonly string[];
  /** System information. */
  readonly sys: boolean | readonly string[];
}

/** No permissions at all. */
export const NO_PERMISSIONS: PipelinePermissions = {
  read: false,
  write: false,
  net: false,
  env: false,
  run: false,
  ffi: false,
  sys: false,
};

/** The heap limit of the pipeline process unless `--pipeline-memory` says otherwise. */
export const DEFAULT_PIPELINE_MEMORY_MB = 2048;

/** The pipeline could not be loaded (syntax error, missing import, no default export). */
export class PipelineLoadError extends Error {
  /** The stack of what pipeline code threw, when it threw something. */
  readonly pipelineStack?: string;

  /** Creates a load error. */
  constructor(message: string, pipelineStack?: string) {
    super(message);
    this.name = "PipelineLoadError";
    if (pipelineStack !== undefined) this.pipelineStack = pipelineStack;
  }
}

/** What the pipeline process reports besides RPC calls. */
export interface PipelineEvents {
  /**
   * A `console` call in pipeline code (with the `group()` it was made in), or a line it
   * wrote to stdout/stderr.
   */
  log(level: "info" | "warn" | "error", message: string, groupId?: string): void;
  /** Masks error messages before they cross back into the pipeline process. */
  mask(error: WireError): WireError;
}

/** How to start the pipeline process. */
export interface PipelineProcessOptions {
  /** Absolute path of the pipeline file (its real path). */
  readonly pipelinePath: string;
  /** What the user granted pipeline code. */
  readonly permissions: PipelinePermissions;
  /** A private (0700) directory of the runner for the socket; the caller removes it. */
  readonly privateDir: string;
  /** Heap limit in MB. */
  readonly memoryMb?: number;
  /** An import was allowed with `--allow-import`: Deno may fetch packages. */
  readonly fetches?: boolean;
  /** The process's main module (default `pipeline_main.ts`; tests give misbehaving ones). */
  readonly main?: string;
}

/** The most characters of one stdout/stderr line turned into a log event. */
const MAX_LINE_CHARS = 64 * 1024;

/** How long output still arriving after the process ended is waited for. */
const DRAIN_MS = 1000;

function pipelineDirOf(pipelinePath: string): string {
  return pipelinePath.slice(0, pipelinePath.lastIndexOf("/")) || "/";
}

function rootsOf(value: boolean | readonly string[]): string[] {
  return value === true ? ["/"] : value === false ? [] : [...value];
}

/**
 * The Deno flags of the pipeline process: the user's grants plus read of the
 * pipeline's directory and the socket, and denials for every symlink under the
 * granted directories whose real path leaves them.
 */
export async function pipelineFlags(
  pipelinePath: string,
  permissions: PipelinePermissions,
  socketPath: string,
): Promise<string[]> {
  const readRoots = [pipelineDirOf(pipelinePath), ...rootsOf(permissions.read)];
  const writeRoots = rootsOf(permissions.write);
  const needs: PermissionNeed[] = [
    { permission: "read", values: [...readRoots, socketPath], reason: "pipeline" },
    { permission: "write", values: [socketPath], reason: "rpc" },
    { permission: "net", values: [`unix:${socketPath}`], reason: "rpc" },
  ];
  for (const name of ["write", "net", "env", "run", "ffi", "sys"] as const) {
    const grant = permissions[name];
    if (grant !== false) {
      needs.push({ permission: name, values: grant === true ? true : [...grant], reason: "user" });
    }
  }
  const flags = permissionFlags(needs);
  const [readDeny, writeDeny] = await Promise.all([
    escapingSymlinks(readRoots),
    escapingSymlinks(writeRoots),
  ]);
  for (const path of [...readDeny.deny, ...writeDeny.deny]) {
    // A Deno flag splits at commas: such a link could not be denied.
    if (path.includes(",")) {
      throw new Error(
        `the symlink ${path} leads outside the directories pipeline code may use and its path holds a comma, which a Deno permission flag cannot name; remove or rename it`,
      );
    }
  }
  if (readDeny.deny.length > 0) flags.push(`--deny-read=${readDeny.deny.join(",")}`);
  if (writeDeny.deny.length > 0) flags.push(`--deny-write=${writeDeny.deny.join(",")}`);
  return flags;
}

function envFor(permissions: PipelinePermissions, fetches: boolean): Record<string, string> {
  const env: Record<string, string> = {};
  const copy = (name: string) => {
    try {
      const value = Deno.env.get(name);
      if (value !== undefined) env[name] = value;
    } catch {
      // not readable by the runner: not passed on
    }
  };
  if (permissions.env === true) {
    try {
      Object.assign(env, Deno.env.toObject());
    } catch {
      // the runner could not grant it anyway
    }
  } else if (permissions.env !== false) {
    for (const name of permissions.env) copy(name);
  }
  for (const name of PIPELINE_ENV_NAMES) copy(name);
  env.NO_COLOR = "1";
  env.DENO_NO_PACKAGE_JSON = "1";
  env.DENO_NO_UPDATE_CHECK = "1";
  if (!fetches) {
    // `--cached-only` alone still lets Deno fetch npm packages: a closed proxy stops it.
    for (const name of ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]) {
      env[name] = env[name.toLowerCase()] = "http://127.0.0.1:0";
    }
    delete env.NO_PROXY;
    delete env.no_proxy;
  }
  return env;
}

/** `512 MB`, `2 GB`. */
function formatMb(mb: number): string {
  return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GB` : `${mb} MB`;
}

/** Waits for `promise`, at most `ms`. */
async function atMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
  clearTimeout(timer);
}

/** Splits a byte stream into lines (cut at {@link MAX_LINE_CHARS}) for `emit`. */
async function readLines(
  stream: ReadableStream<Uint8Array>,
  emit: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let rest = "";
  const flush = (final: boolean) => {
    let newline: number;
    while ((newline = rest.indexOf("\n")) !== -1) {
      emit(rest.slice(0, newline).replace(/\r$/, ""));
      rest = rest.slice(newline + 1);
    }
    while (rest.length > MAX_LINE_CHARS) {
      emit(rest.slice(0, MAX_LINE_CHARS));
      rest = rest.slice(MAX_LINE_CHARS);
    }
    if (final && rest !== "") {
      emit(rest);
      rest = "";
    }
  };
  try {
    for await (const chunk of stream) {
      rest += decoder.decode(chunk, { stream: true });
      flush(false);
    }
  } catch {
    // the pipe broke; what was read is kept
  }
  rest += decoder.decode();
  flush(true);
}

/** A loaded pipeline running in its own Deno process. */
export class PipelineProcess {
  readonly #child: Deno.ChildProcess;
  readonly #host: Promise<PipelineHost>;
  #attach!: (host: PipelineHost) => void;
  readonly #events: PipelineEvents;
  readonly #memoryMb: number;
  #conn: Deno.UnixConn | undefined;
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #loaded!: (name: string) => void;
  #loadFailed!: (error: PipelineLoadError) => void;
  #finished!: (error: WireError | undefined) => void;
  #isLoaded = false;
  #resources: ResourceHint | undefined;
  #isFinished = false;
  #terminated = false;
  #exited = false;
  #outOfMemory = false;
  readonly #calls = new Set<number>();
  readonly #loadPromise: Promise<string>;
  readonly #donePromise: Promise<WireError | undefined>;
  readonly #outputDone: Promise<void>;
  readonly #status: Promise<Deno.CommandStatus>;

  private constructor(
    child: Deno.ChildProcess,
    listener: Deno.Listener,
    events: PipelineEvents,
    memoryMb: number,
  ) {
    this.#child = child;
    this.#host = new Promise((resolve) => this.#attach = resolve);
    this.#events = events;
    this.#memoryMb = memoryMb;
    this.#loadPromise = new Promise((resolve, reject) => {
      this.#loaded = resolve;
      this.#loadFailed = reject;
    });
    this.#loadPromise.catch(() => {});
    this.#donePromise = new Promise((resolve) => this.#finished = resolve);
    this.#outputDone = Promise.all([
      readLines(child.stdout, (line) => this.#events.log("info", line)),
      readLines(child.stderr, (line) => {
        if (/Reached heap limit|JavaScript heap out of memory|out of memory/i.test(line)) {
          this.#outOfMemory = true;
        }
        this.#events.log("error", line);
      }),
    ]).then(() => {});
    this.#status = child.status;
    void this.#serve(listener);
    void this.#watchExit();
  }

  /** Starts the pipeline process and waits until the pipeline module has loaded. */
  static async load(
    options: PipelineProcessOptions,
    host: PipelineHost,
    events: PipelineEvents,
  ): Promise<{ worker: PipelineProcess; name: string }> {
    const worker = await PipelineProcess.start(options, events);
    return { worker, name: await worker.attach(host) };
  }

  /**
   * Starts the pipeline process without waiting for it: it boots and loads the
   * pipeline while the runner starts the driver. Calls wait for {@link attach}.
   */
  static async start(
    options: PipelineProcessOptions,
    events: PipelineEvents,
  ): Promise<PipelineProcess> {
    const socketPath = `${options.privateDir}/${SOCKET_NAME}`;
    const memoryMb = options.memoryMb ?? DEFAULT_PIPELINE_MEMORY_MB;
    const fetches = options.fetches ?? false;
    const listener = Deno.listen({ transport: "unix", path: socketPath });
    let child: Deno.ChildProcess;
    try {
      const flags = await pipelineFlags(options.pipelinePath, options.permissions, socketPath);
      const fallbackName = options.pipelinePath.slice(options.pipelinePath.lastIndexOf("/") + 1)
        .replace(/\.[^.]+$/, "");
      child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "--no-prompt",
          "--no-config",
          "--no-lock",
          ...(fetches ? [] : ["--no-remote", "--cached-only"]),
          `--import-map=${dslImportMapUrl()}`,
          `--v8-flags=--max-old-space-size=${memoryMb}`,
          ...flags,
          options.main ?? new URL("./pipeline_main.ts", import.meta.url).href,
          socketPath,
          toFileUrl(options.pipelinePath),
          fallbackName,
        ],
        clearEnv: true,
        env: envFor(options.permissions, fetches),
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        // Its own process group: a Ctrl-C in the terminal goes to the runner, which
        // stops the pipeline itself.
        detached: true,
      }).spawn();
    } catch (error) {
      listener.close();
      throw error;
    }
    return new PipelineProcess(child, listener, events, memoryMb);
  }

  /** The pipeline's resources hint, once it has loaded (undefined when it gave none). */
  get resources(): ResourceHint | undefined {
    return this.#resources;
  }

  /**
   * Gives the process the host that answers its calls and waits until the pipeline
   * module has loaded; resolves with the pipeline's name. On a load failure the
   * process is stopped and a {@link PipelineLoadError} thrown.
   */
  async attach(host: PipelineHost): Promise<string> {
    this.#attach(host);
    try {
      return await this.#loadPromise;
    } catch (error) {
      await this.terminate();
      throw error;
    }
  }

  async #serve(listener: Deno.Listener): Promise<void> {
    let conn: Deno.UnixConn;
    try {
      // One connection, from the process itself, before any pipeline code runs.
      const accepted = await Promise.race([
        listener.accept(),
        this.#status.then(() => undefined),
      ]);
      if (accepted === undefined) return;
      conn = accepted as Deno.UnixConn;
    } catch {
      return;
    } finally {
      listener.close();
    }
    if (this.#terminated) {
      conn.close();
      return;
    }
    this.#conn = conn;
    this.#writer = conn.writable.getWriter();
    const reader = new FrameReader();
    try {
      for await (const chunk of conn.readable) {
        for (const value of reader.push(chunk)) {
          this.#onMessage(validatePipelineMessage(value));
          if (this.#terminated) return;
        }
      }
    } catch (error) {
      if (this.#terminated) return;
      const why = error instanceof ProtocolError ? error.message : String(error).split("\n")[0];
      this.#fail(`the pipeline process sent an invalid message (${why}); it was stopped`);
    }
  }

  async #watchExit(): Promise<void> {
    const status = await this.#status;
    this.#exited = true;
    if (this.#terminated || this.#isFinished) return;
    // Output written just before the end (such as V8's out-of-memory report).
    await atMost(this.#outputDone, DRAIN_MS);
    if (this.#terminated || this.#isFinished) return;
    let what: string;
    if (this.#outOfMemory) {
      what = `the pipeline ran out of memory (its heap limit is ${
        formatMb(this.#memoryMb)
      }; raise it with --pipeline-memory=SIZE)`;
    } else if (status.signal !== null) {
      what = `the pipeline process was killed by ${status.signal}`;
    } else {
      what = `the pipeline process exited with code ${status.code} before the pipeline ${
        this.#isLoaded ? "finished" : "loaded"
      } (pipeline code called Deno.exit() or close())`;
    }
    this.#fail(what);
  }

  #fail(message: string): void {
    if (!this.#isLoaded) this.#loadFailed(new PipelineLoadError(message));
    else this.#finish({ name: "PipelineProcessError", message });
    void this.terminate();
  }

  #finish(error: WireError | undefined): void {
    if (this.#isFinished) return;
    this.#isFinished = true;
    this.#finished(error);
  }

  #post(message: RunnerMessage): void {
    if (this.#terminated || this.#writer === undefined) return;
    this.#writer.write(encodeFrame(message)).catch(() => {});
  }

  #uncaught(message: string, stack?: string): void {
    if (!this.#isLoaded) this.#loadFailed(new PipelineLoadError(message, stack));
    else {
      this.#finish({ name: "UncaughtError", message, ...(stack === undefined ? {} : { stack }) });
    }
  }

  #onMessage(message: PipelineMessage): void {
    switch (message.kind) {
      case "loaded":
        this.#isLoaded = true;
        this.#resources = message.resources;
        this.#loaded(message.name);
        break;
      case "load-error":
        this.#loadFailed(new PipelineLoadError(message.message, message.stack));
        break;
      case "uncaught":
        this.#uncaught(message.message, message.stack);
        break;
      case "log":
        this.#events.log(message.level, message.message, message.groupId);
        break;
      case "done":
        this.#finish(message.error);
        break;
      case "call":
        if (this.#calls.has(message.id)) {
          throw new ProtocolError(`a second call with id ${message.id} while the first runs`);
        }
        void this.#answer(message);
        break;
    }
  }

  async #answer(message: Extract<PipelineMessage, { kind: "call" }>): Promise<void> {
    this.#calls.add(message.id);
    const onOutput: OutputCallback | undefined = message.streamOutput
      ? (stream, chunk) => this.#post({ kind: "output", id: message.id, stream, chunk })
      : undefined;
    try {
      const host = await this.#host;
      const method = host[message.method] as (...args: unknown[]) => Promise<unknown>;
      const args = message.method === "runTask" || message.method === "execSandbox"
        ? [...message.args, onOutput]
        : [...message.args];
      const value = await method.apply(host, args);
      this.#post({ kind: "reply", id: message.id, value });
    } catch (error) {
      this.#post({ kind: "reply", id: message.id, error: this.#events.mask(toWireError(error)) });
    } finally {
      this.#calls.delete(message.id);
    }
  }

  /** The process ID of the pipeline process. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Runs the pipeline; resolves with its error, or undefined when it succeeded. */
  run(context: WireContext): Promise<WireError | undefined> {
    this.#post({ kind: "start", context });
    return this.#donePromise;
  }

  /** Aborts `ctx.signal` in the pipeline. */
  abort(reason: string): void {
    this.#post({ kind: "abort", reason });
  }

  /**
   * Stops the process (SIGKILL) and waits until it is gone and what it wrote has been
   * reported (output held by a grandchild that inherited the pipes is not waited for).
   */
  async terminate(): Promise<void> {
    if (!this.#terminated) {
      this.#terminated = true;
      this.#finish({ name: "Error", message: "the pipeline was stopped" });
      if (!this.#exited) {
        try {
          this.#child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }
      try {
        this.#conn?.close();
      } catch {
        // already closed
      }
      try {
        await this.#child.stdin.close();
      } catch {
        // already closed
      }
    }
    await this.#status;
    await atMost(this.#outputDone, DRAIN_MS);
  }
}
