/**
 * Runs inside the pipeline's Worker (no permissions beyond reading its own
 * directory, unless the user granted more). Installs the RPC host the DSL talks
 * to, routes `console` to the runner, then runs the pipeline's default export.
 *
 * The runner loads a tiny bootstrap module that imports this module and then the
 * pipeline (dynamically), so the host and the error handlers exist before any
 * pipeline code is parsed. Errors that escape pipeline code are reported to the
 * runner as one line instead of Deno printing a stack trace.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { TaskError } from "../dsl/errors.ts";
import { installHost, type PipelineHost } from "../dsl/host.ts";
import { pipelineFromModule } from "../dsl/pipeline.ts";
import type { OutputCallback, TaskResult } from "../dsl/types.ts";
import {
  type HostMethod,
  type RunnerMessage,
  toWireError,
  uncaughtLine,
  type WireContext,
  type WireError,
  type WorkerMessage,
} from "./rpc.ts";

const port = self as unknown as {
  postMessage(message: WorkerMessage): void;
  onmessage: ((event: MessageEvent<RunnerMessage>) => void) | null;
};

const pending = new Map<
  number,
  { resolve(value: unknown): void; reject(error: unknown): void; onOutput?: OutputCallback }
>();
let nextId = 1;
const abort = new AbortController();
let startContext: (context: WireContext) => void;
const started = new Promise<WireContext>((resolve) => startContext = resolve);

function fromWire(error: WireError): Error {
  if (error.name === "TaskError" && error.result) return new TaskError(error.result as TaskResult);
  const rebuilt = new Error(error.message);
  rebuilt.name = error.name;
  return rebuilt;
}

port.onmessage = (event) => {
  const message = event.data;
  switch (message.kind) {
    case "start":
      startContext(message.context);
      break;
    case "reply": {
      const call = pending.get(message.id);
      pending.delete(message.id);
      if (call === undefined) break;
      if (message.error) call.reject(fromWire(message.error));
      else call.resolve(message.value);
      break;
    }
    case "output":
      try {
        pending.get(message.id)?.onOutput?.(message.stream, message.chunk);
      } catch {
        // A throwing callback must not break the run.
      }
      break;
    case "abort":
      abort.abort(message.reason);
      break;
  }
};

function call<T>(method: HostMethod, args: unknown[], onOutput?: OutputCallback): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { resolve: resolve as (value: unknown) => void, reject, onOutput });
    port.postMessage({ kind: "call", id, method, args, streamOutput: onOutput !== undefined });
  });
}

const host: PipelineHost = {
  runTask: (request, onOutput) => call("runTask", [request], onOutput),
  createVolume: (request) => call("createVolume", [request]),
  readFiles: (volumeId, paths) => call("readFiles", [volumeId, paths]),
  readFile: (volumeId, path) => call("readFile", [volumeId, path]),
  writeFiles: (volumeId, files) => call("writeFiles", [volumeId, files]),
  exportTo: (volumeId, hostDir, path) => call("exportTo", [volumeId, hostDir, path]),
  startSandbox: (request) => call("startSandbox", [request]),
  execSandbox: (sandboxId, request, onOutput) =>
    call("execSandbox", [sandboxId, request], onOutput),
  closeSandbox: (sandboxId) => call("closeSandbox", [sandboxId]),
};
installHost(host);

// The runner reports these as one line; preventDefault stops Deno printing them.
self.addEventListener("error", (event) => {
  event.preventDefault();
  const at = event.filename ? [`${event.filename}:${event.lineno}:${event.colno}`] : [];
  port.postMessage({ kind: "uncaught", message: uncaughtLine(event.error ?? event.message, at) });
});
self.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  port.postMessage({ kind: "uncaught", message: uncaughtLine(event.reason) });
});

function format(args: unknown[]): string {
  return args.map((arg) => typeof arg === "string" ? arg : Deno.inspect(arg, { colors: false }))
    .join(" ");
}

function route(level: "info" | "warn" | "error") {
  return (...args: unknown[]) => port.postMessage({ kind: "log", level, message: format(args) });
}

Object.assign(globalThis.console, {
  log: route("info"),
  info: route("info"),
  debug: route("info"),
  dir: route("info"),
  table: route("info"),
  warn: route("warn"),
  error: route("error"),
  trace: route("error"),
});

/** Loads the pipeline module, then runs its default export once the runner says start. */
export async function startPipeline(
  load: () => Promise<Record<string, unknown>>,
  fallbackName: string,
): Promise<void> {
  let module: Record<string, unknown>;
  try {
    module = await load();
  } catch (error) {
    port.postMessage({ kind: "load-error", message: uncaughtLine(error) });
    return;
  }
  const found = pipelineFromModule(module, fallbackName);
  if (typeof found === "string") {
    port.postMessage({ kind: "load-error", message: found });
    return;
  }
  port.postMessage({ kind: "loaded", name: found.name });
  const context = await started;
  try {
    await found.run({ ...context, args: [...context.args], signal: abort.signal });
    port.postMessage({ kind: "done" });
  } catch (error) {
    port.postMessage({ kind: "done", error: toWireError(error) });
  }
}
