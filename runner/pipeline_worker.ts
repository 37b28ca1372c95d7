/**
 * The runner's end of the pipeline Worker: starts it with the pipeline's
 * permissions, answers its RPC calls with a {@link PipelineHost}, and reports its
 * logs and outcome.
 *
 * @module
 */

import type { PipelineHost } from "../dsl/host.ts";
import type { OutputCallback } from "../dsl/types.ts";
import { toFileUrl } from "./file_url.ts";
import {
  type RunnerMessage,
  stripAnsi,
  toWireError,
  userFrame,
  type WireContext,
  type WireError,
  type WorkerMessage,
} from "./rpc.ts";

/** Deno permissions for the pipeline Worker (`false`: none; `true`: all; a list: those). */
export interface WorkerPermissions {
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
export const NO_PERMISSIONS: WorkerPermissions = {
  read: false,
  write: false,
  net: false,
  env: false,
  run: false,
  ffi: false,
  sys: false,
};

/** The pipeline could not be loaded (syntax error, missing import, no default export). */
export class PipelineLoadError extends Error {
  /** Creates a load error. */
  constructor(message: string) {
    super(message);
    this.name = "PipelineLoadError";
  }
}

/** What the worker reports besides RPC calls. */
export interface WorkerEvents {
  /** A `console` call in pipeline code. */
  log(level: "info" | "warn" | "error", message: string): void;
  /** Masks error messages before they cross back into the worker. */
  mask(error: WireError): WireError;
}

/** The read permission the worker gets: its own directory plus what the user granted. */
export function workerPermissions(
  pipelineDir: string,
  granted: WorkerPermissions,
): Deno.PermissionOptionsObject {
  const list = (value: boolean | readonly string[]) =>
    typeof value === "boolean" ? value : [...value];
  return {
    read: granted.read === true ? true : [pipelineDir, ...(granted.read || [])],
    write: list(granted.write),
    net: list(granted.net),
    env: list(granted.env),
    run: list(granted.run),
    ffi: list(granted.ffi),
    sys: list(granted.sys) as Deno.PermissionOptionsObject["sys"],
    import: false,
  };
}

/** A loaded pipeline running in its own Worker. */
export class PipelineWorker {
  readonly #worker: Worker;
  readonly #host: PipelineHost;
  readonly #events: WorkerEvents;
  #loaded!: (name: string) => void;
  #loadFailed!: (error: PipelineLoadError) => void;
  #finished!: (error: WireError | undefined) => void;
  #isLoaded = false;
  #terminated = false;
  readonly #loadPromise: Promise<string>;
  readonly #donePromise: Promise<WireError | undefined>;

  private constructor(
    pipelinePath: string,
    permissions: Deno.PermissionOptionsObject,
    host: PipelineHost,
    events: WorkerEvents,
  ) {
    this.#host = host;
    this.#events = events;
    this.#loadPromise = new Promise((resolve, reject) => {
      this.#loaded = resolve;
      this.#loadFailed = reject;
    });
    this.#donePromise = new Promise((resolve) => this.#finished = resolve);
    const workerMain = new URL("./worker_main.ts", import.meta.url).href;
    const pipelineUrl = toFileUrl(pipelinePath);
    const fallbackName = pipelinePath.slice(pipelinePath.lastIndexOf("/") + 1).replace(
      /\.[^.]+$/,
      "",
    );
    const source = [
      `import { startPipeline } from ${JSON.stringify(workerMain)};`,
      // Imported dynamically, so the worker's error handlers exist before the
      // pipeline is even parsed (a syntax error is then reported, not printed).
      `await startPipeline(() => import(${JSON.stringify(pipelineUrl)}), ${
        JSON.stringify(fallbackName)
      });`,
    ].join("\n");
    this.#worker = new Worker(
      `data:application/javascript,${encodeURIComponent(source)}`,
      { type: "module", name: "pipeline", deno: { permissions } },
    );
    this.#worker.onmessage = (event: MessageEvent<WorkerMessage>) => this.#onMessage(event.data);
    this.#worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      // Pipeline code's errors are reported by the worker itself (see worker_main.ts);
      // this is the fallback for anything that escapes it.
      const message = stripAnsi(event.message ?? String(event.error)).replace(
        /^Uncaught \(in promise\) /,
        "",
      )
        .replace(/^Uncaught /, "");
      const first = message.split("\n")[0];
      const where = event.filename
        ? userFrame([`${event.filename}:${event.lineno}:${event.colno}`])
        : "";
      this.#uncaught(first + where);
    };
  }

  /** Starts a Worker for `pipelinePath` and waits until the pipeline module has loaded. */
  static async load(
    pipelinePath: string,
    permissions: Deno.PermissionOptionsObject,
    host: PipelineHost,
    events: WorkerEvents,
  ): Promise<{ worker: PipelineWorker; name: string }> {
    const worker = new PipelineWorker(pipelinePath, permissions, host, events);
    try {
      const name = await worker.#loadPromise;
      return { worker, name };
    } catch (error) {
      worker.terminate();
      throw error;
    }
  }

  #post(message: RunnerMessage): void {
    if (this.#terminated) return;
    try {
      this.#worker.postMessage(message);
    } catch {
      // The worker is gone; nothing is waiting for this message.
    }
  }

  #uncaught(message: string): void {
    if (!this.#isLoaded) this.#loadFailed(new PipelineLoadError(message));
    else this.#finished({ name: "UncaughtError", message });
  }

  #onMessage(message: WorkerMessage): void {
    switch (message.kind) {
      case "loaded":
        this.#isLoaded = true;
        this.#loaded(message.name);
        break;
      case "load-error":
        this.#loadFailed(new PipelineLoadError(message.message));
        break;
      case "uncaught":
        this.#uncaught(message.message);
        break;
      case "log":
        this.#events.log(message.level, message.message);
        break;
      case "done":
        this.#finished(message.error);
        break;
      case "call":
        void this.#answer(message);
        break;
    }
  }

  async #answer(message: Extract<WorkerMessage, { kind: "call" }>): Promise<void> {
    const onOutput: OutputCallback | undefined = message.streamOutput
      ? (stream, chunk) => this.#post({ kind: "output", id: message.id, stream, chunk })
      : undefined;
    try {
      const method = this.#host[message.method] as (...args: unknown[]) => Promise<unknown>;
      const args = message.method === "runTask" || message.method === "execSandbox"
        ? [...message.args, onOutput]
        : [...message.args];
      const value = await method.apply(this.#host, args);
      this.#post({ kind: "reply", id: message.id, value });
    } catch (error) {
      this.#post({ kind: "reply", id: message.id, error: this.#events.mask(toWireError(error)) });
    }
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

  /** Stops the Worker. */
  terminate(): void {
    if (this.#terminated) return;
    this.#terminated = true;
    this.#worker.terminate();
    this.#finished({ name: "Error", message: "the pipeline was stopped" });
  }
}
