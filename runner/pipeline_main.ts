/**
 * The main module of the pipeline process (`deno run` with no permissions beyond
 * reading the pipeline's directory, unless the user granted more). Removes the
 * storage APIs that would outlive the run, connects to the runner's unix socket,
 * installs the RPC host the DSL talks to, routes `console` to the runner, then
 * imports the pipeline (dynamically, so the error handlers exist before any
 * pipeline code is parsed) and runs its default export when the runner says start.
 *
 * Arguments: the socket path, the pipeline's file URL, the fallback pipeline name.
 * The process exits when the runner closes the socket or its standard input (the
 * runner died), and the runner kills it once the run is over.
 *
 * @module
 */

// Before any pipeline code: CacheStorage and Web Storage write to Deno's cache
// directory, shared by every pipeline and kept across runs.
for (const name of ["caches", "localStorage", "sessionStorage"]) {
  delete (globalThis as Record<string, unknown>)[name];
}

import { TaskError } from "../dsl/errors.ts";
import { currentGroupId } from "../dsl/group.ts";
import { installHost, type PipelineHost } from "../dsl/host.ts";
import { pipelineFromModule } from "../dsl/pipeline.ts";
import type { OutputCallback, TaskResult } from "../dsl/types.ts";
// Loaded here, before the pipeline: the pipeline's own import of the DSL then
// needs no read permission on PocketCI's directory.
import "../mod.ts";
import {
  encodeFrame,
  FrameReader,
  type HostMethod,
  type PipelineMessage,
  type RunnerMessage,
  stripAnsi,
  toWireError,
  uncaughtLine,
  type WireContext,
  type WireError,
} from "./rpc.ts";

const [socketPath, pipelineUrl, fallbackName] = Deno.args;

const conn = await Deno.connect({ transport: "unix", path: socketPath });
const writer = conn.writable.getWriter();

function send(message: PipelineMessage): void {
  writer.write(encodeFrame(message)).catch(() => {});
}

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

function receive(message: RunnerMessage): void {
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
}

// The runner is gone (or done with us) when the socket or standard input closes.
(async () => {
  const reader = new FrameReader(Number.MAX_SAFE_INTEGER);
  try {
    for await (const chunk of conn.readable) {
      for (const message of reader.push(chunk)) receive(message as RunnerMessage);
    }
  } catch {
    // a reset connection ends the process like a closed one
  }
  Deno.exit(1);
})();
(async () => {
  try {
    for await (const _ of Deno.stdin.readable) {
      // nothing is sent on stdin; only its end matters
    }
  } catch {
    // closed
  }
  Deno.exit(1);
})();

function call<T>(method: HostMethod, args: unknown[], onOutput?: OutputCallback): Promise<T> {
  const id = nextId++;
  // JSON would turn a trailing optional argument left out into null.
  while (args.length > 0 && args[args.length - 1] === undefined) args.pop();
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { resolve: resolve as (value: unknown) => void, reject, onOutput });
    send({ kind: "call", id, method, args, streamOutput: onOutput !== undefined });
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
  hashFiles: (patterns) => call("hashFiles", [patterns]),
  startService: (request) => call("startService", [request]),
  stopService: (serviceId) => call("stopService", [serviceId]),
  serviceLogs: (serviceId) => call("serviceLogs", [serviceId]),
  startGroup: (request) => call("startGroup", [request]),
  endGroup: (groupId, outcome) => call("endGroup", [groupId, outcome]),
};
installHost(host);

function stackOf(error: unknown): { stack?: string } {
  return error instanceof Error && error.stack ? { stack: stripAnsi(error.stack) } : {};
}

// The runner reports these as one line; preventDefault stops Deno printing them.
globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  const at = event.filename ? [`${event.filename}:${event.lineno}:${event.colno}`] : [];
  send({
    kind: "uncaught",
    message: uncaughtLine(event.error ?? event.message, at),
    ...stackOf(event.error),
  });
});
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  send({ kind: "uncaught", message: uncaughtLine(event.reason), ...stackOf(event.reason) });
});

function format(args: unknown[]): string {
  return args.map((arg) => typeof arg === "string" ? arg : Deno.inspect(arg, { colors: false }))
    .join(" ");
}

function route(level: "info" | "warn" | "error") {
  return (...args: unknown[]) => {
    const groupId = currentGroupId();
    send({ kind: "log", level, message: format(args), ...(groupId ? { groupId } : {}) });
  };
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

let module: Record<string, unknown> | undefined;
try {
  module = await import(pipelineUrl);
} catch (error) {
  send({ kind: "load-error", message: uncaughtLine(error), ...stackOf(error) });
}
if (module !== undefined) {
  const found = pipelineFromModule(module, fallbackName);
  if (typeof found === "string") {
    send({ kind: "load-error", message: found });
  } else {
    send({
      kind: "loaded",
      name: found.name,
      ...(found.resources === undefined ? {} : { resources: found.resources }),
    });
    const context = await started;
    try {
      await found.run({ ...context, args: [...context.args], signal: abort.signal });
      send({ kind: "done" });
    } catch (error) {
      const wire = toWireError(error);
      send({ kind: "done", error: wire.stack ? { ...wire, stack: stripAnsi(wire.stack) } : wire });
    }
  }
}
