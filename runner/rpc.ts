/**
 * The messages between the pipeline process and the runner, over a unix socket:
 * length-prefixed JSON frames, validated on the runner's side. The pipeline process
 * owns no permissions to do anything itself; every task, volume and sandbox
 * operation is a `call` the runner answers with a `reply`.
 *
 * @module
 */

import type { PipelineHost } from "../dsl/host.ts";
import { MAX_HINT_CPU, MAX_HINT_MEMORY_BYTES, type ResourceHint } from "../dsl/pipeline.ts";

/** The host methods callable over RPC. */
export type HostMethod = keyof PipelineHost;

/** An error as it crosses the process boundary. */
export interface WireError {
  /** The error's class name (`TaskError`, `DriverError`, `Error`, ...). */
  readonly name: string;
  /** One-line message. */
  readonly message: string;
  /** A task result, for `TaskError`. */
  readonly result?: unknown;
  /** The pipeline's stack, for display only. */
  readonly stack?: string;
}

/** What the pipeline sees as its context (the signal is rebuilt in the pipeline process). */
export interface WireContext {
  /** Run ID. */
  readonly runId: string;
  /** Driver name. */
  readonly driver: string;
  /** The driver services run on (the run's, or the operator's `--service-driver`). */
  readonly serviceDriver: string;
  /** Namespace. */
  readonly namespace: string;
  /** Arguments after `--`. */
  readonly args: readonly string[];
}

/** The host methods the pipeline process may call, with the most arguments each takes. */
export const HOST_METHODS: Readonly<Record<HostMethod, number>> = {
  runTask: 1,
  createVolume: 1,
  readFiles: 2,
  readFile: 2,
  writeFiles: 2,
  exportTo: 3,
  startSandbox: 1,
  execSandbox: 2,
  closeSandbox: 1,
  hashFiles: 1,
  startService: 1,
  stopService: 1,
  serviceLogs: 1,
  startGroup: 1,
  endGroup: 2,
};

/** Pipeline process → runner. */
export type PipelineMessage =
  | {
    readonly kind: "call";
    readonly id: number;
    readonly method: HostMethod;
    readonly args: readonly unknown[];
    readonly streamOutput: boolean;
  }
  | {
    readonly kind: "log";
    readonly level: "info" | "warn" | "error";
    readonly message: string;
    /** The `group()` the `console` call was made in. */
    readonly groupId?: string;
  }
  | {
    readonly kind: "loaded";
    readonly name: string;
    /** The pipeline's resources hint (`pipeline(name, { resources }, fn)`). */
    readonly resources?: ResourceHint;
  }
  | { readonly kind: "load-error"; readonly message: string; readonly stack?: string }
  | { readonly kind: "uncaught"; readonly message: string; readonly stack?: string }
  | { readonly kind: "done"; readonly error?: WireError };

/** Runner → pipeline process. */
export type RunnerMessage =
  | { readonly kind: "start"; readonly context: WireContext }
  | {
    readonly kind: "reply";
    readonly id: number;
    readonly value?: unknown;
    readonly error?: WireError;
  }
  | {
    readonly kind: "output";
    readonly id: number;
    readonly stream: "stdout" | "stderr";
    readonly chunk: string;
  }
  | { readonly kind: "abort"; readonly reason: string };

/** The largest frame either side accepts (bigger ones are a protocol error). */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;

/** The longest text field (log line, error message, name) kept from the pipeline process. */
export const MAX_TEXT_CHARS = 64 * 1024;

/** The longest stack kept from the pipeline process. */
export const MAX_STACK_CHARS = 16 * 1024;

/** A byte array's JSON form: no file name or env name can hold a NUL, so no collision. */
const BYTES_KEY = "\u0000bytes";

type Base64Bytes = Uint8Array & { toBase64(): string };
type Base64Constructor = { fromBase64(text: string): Uint8Array };

/** One message as a frame: a 4-byte big-endian length, then UTF-8 JSON (byte arrays tagged). */
export function encodeFrame(message: unknown): Uint8Array {
  const json = JSON.stringify(
    message,
    (_key, value) =>
      value instanceof Uint8Array ? { [BYTES_KEY]: (value as Base64Bytes).toBase64() } : value,
  );
  const body = new TextEncoder().encode(json);
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  return frame;
}

/** A broken frame or message from the other side. */
export class ProtocolError extends Error {
  /** Creates a protocol error. */
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

function revive(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const text = (value as Record<string, unknown>)[BYTES_KEY];
    if (keys.length === 1 && keys[0] === BYTES_KEY && typeof text === "string") {
      return (Uint8Array as unknown as Base64Constructor).fromBase64(text);
    }
  }
  return value;
}

/** Splits a byte stream into decoded frames. */
export class FrameReader {
  /** Received bytes not yet decoded, joined only once a whole frame is there. */
  #chunks: Uint8Array[] = [];
  #held = 0;
  readonly #maxBytes: number;

  /** A reader refusing frames over `maxBytes`. */
  constructor(maxBytes: number = MAX_FRAME_BYTES) {
    this.#maxBytes = maxBytes;
  }

  #take(bytes: number): Uint8Array {
    const first = this.#chunks[0];
    let out: Uint8Array;
    if (first.length >= bytes) {
      out = first.subarray(0, bytes);
    } else {
      out = new Uint8Array(bytes);
      let filled = 0;
      for (const chunk of this.#chunks) {
        const part = chunk.subarray(0, bytes - filled);
        out.set(part, filled);
        filled += part.length;
        if (filled === bytes) break;
      }
    }
    let left = bytes;
    while (left > 0) {
      const chunk = this.#chunks[0];
      if (chunk.length <= left) {
        this.#chunks.shift();
        left -= chunk.length;
      } else {
        this.#chunks[0] = chunk.subarray(left);
        left = 0;
      }
    }
    this.#held -= bytes;
    return out;
  }

  #peekLength(): number {
    const head = new Uint8Array(4);
    let filled = 0;
    for (const chunk of this.#chunks) {
      const part = chunk.subarray(0, 4 - filled);
      head.set(part, filled);
      filled += part.length;
      if (filled === 4) break;
    }
    return new DataView(head.buffer).getUint32(0);
  }

  /** Adds `chunk`; returns the messages it completed (throws {@link ProtocolError}). */
  push(chunk: Uint8Array): unknown[] {
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#held += chunk.length;
    }
    const messages: unknown[] = [];
    while (this.#held >= 4) {
      const length = this.#peekLength();
      if (length > this.#maxBytes) {
        throw new ProtocolError(
          `a message of ${length} bytes (the limit is ${this.#maxBytes / 1024 / 1024} MiB)`,
        );
      }
      if (this.#held - 4 < length) break;
      this.#take(4);
      const body = this.#take(length);
      try {
        messages.push(JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body), revive));
      } catch {
        throw new ProtocolError("a message that is not UTF-8 JSON");
      }
    }
    return messages;
  }

  /** Bytes of an unfinished frame still held. */
  get pending(): number {
    return this.#held;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

function text(value: unknown, field: string, max: number = MAX_TEXT_CHARS): string {
  if (typeof value !== "string") throw new ProtocolError(`${field} is not a string`);
  return value.length > max ? value.slice(0, max) + " [cut]" : value;
}

function optionalText(value: unknown, field: string, max?: number): string | undefined {
  return value === undefined ? undefined : text(value, field, max);
}

function resourceHint(value: unknown): ResourceHint {
  const limited = (field: unknown, max: number) =>
    typeof field === "number" && Number.isFinite(field) && field >= 0 && field <= max;
  if (
    !isRecord(value) || Object.keys(value).some((key) => key !== "cpu" && key !== "memoryBytes") ||
    !limited(value.cpu, MAX_HINT_CPU) || !limited(value.memoryBytes, MAX_HINT_MEMORY_BYTES)
  ) {
    throw new ProtocolError("a resources hint that is not { cpu, memoryBytes } within bounds");
  }
  return { cpu: value.cpu as number, memoryBytes: value.memoryBytes as number };
}

function wireError(value: unknown): WireError {
  if (!isRecord(value)) throw new ProtocolError("error is not an object");
  const stack = optionalText(value.stack, "error.stack", MAX_STACK_CHARS);
  return {
    name: text(value.name, "error.name", 200),
    message: text(value.message, "error.message"),
    ...(value.result === undefined ? {} : { result: value.result }),
    ...(stack === undefined ? {} : { stack }),
  };
}

/**
 * Checks that `value` is a {@link PipelineMessage} (kind, field types, a known
 * method with no more arguments than it takes, a positive integer ID) and returns
 * it with over-long texts cut; throws {@link ProtocolError} naming what is wrong.
 */
export function validatePipelineMessage(value: unknown): PipelineMessage {
  if (!isRecord(value)) throw new ProtocolError(`a message that is not an object`);
  const kind = value.kind;
  switch (kind) {
    case "call": {
      const { id, method, args, streamOutput } = value;
      if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 1) {
        throw new ProtocolError("a call whose id is not a positive integer");
      }
      if (typeof method !== "string" || !Object.hasOwn(HOST_METHODS, method)) {
        throw new ProtocolError(`a call of an unknown method ${JSON.stringify(method)}`);
      }
      const max = HOST_METHODS[method as HostMethod];
      if (!Array.isArray(args) || args.length > max) {
        throw new ProtocolError(
          `a ${method} call whose arguments are not a list of at most ${max}`,
        );
      }
      if (typeof streamOutput !== "boolean") {
        throw new ProtocolError("a call whose streamOutput is not a boolean");
      }
      return { kind, id, method: method as HostMethod, args, streamOutput };
    }
    case "log": {
      const level = value.level;
      if (level !== "info" && level !== "warn" && level !== "error") {
        throw new ProtocolError(`a log message with level ${JSON.stringify(level)}`);
      }
      const groupId = value.groupId;
      if (
        groupId !== undefined && (typeof groupId !== "string" || !/^group-\d{1,6}$/.test(groupId))
      ) {
        throw new ProtocolError("a log message whose groupId is not a group ID");
      }
      return {
        kind,
        level,
        message: text(value.message, "log message"),
        ...(groupId === undefined ? {} : { groupId }),
      };
    }
    case "loaded": {
      const name = text(value.name, "pipeline name", 200);
      return value.resources === undefined
        ? { kind, name }
        : { kind, name, resources: resourceHint(value.resources) };
    }
    case "load-error":
    case "uncaught": {
      const stack = optionalText(value.stack, "stack", MAX_STACK_CHARS);
      return {
        kind,
        message: text(value.message, `${kind} message`),
        ...(stack === undefined ? {} : { stack }),
      };
    }
    case "done":
      return value.error === undefined ? { kind } : { kind, error: wireError(value.error) };
    default:
      throw new ProtocolError(`a message of unknown kind ${JSON.stringify(kind)?.slice(0, 40)}`);
  }
}

/** Converts a thrown value into a {@link WireError}. */
export function toWireError(error: unknown): WireError {
  if (error instanceof Error) {
    const result = (error as { result?: unknown }).result;
    return {
      name: error.name,
      message: error.message,
      ...(result === undefined ? {} : { result }),
      ...(error.stack ? { stack: error.stack } : {}),
    };
  }
  return { name: "Error", message: String(error) };
}

/** Removes terminal colour codes. */
export function stripAnsi(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

const OWN_CODE = new URL("../", import.meta.url).href;

/**
 * ` (at /path:line:column)` for the first of `frames` (texts holding a file URL with
 * line and column, such as stack lines) outside PocketCI's own code, else `""`.
 */
export function userFrame(frames: readonly string[]): string {
  for (const frame of frames) {
    const match = /(file:\/\/[^\s()]+):(\d+):(\d+)/.exec(frame);
    if (match === null || match[1].startsWith(OWN_CODE)) continue;
    return ` (at ${decodeURIComponent(new URL(match[1]).pathname)}:${match[2]}:${match[3]})`;
  }
  return "";
}

/** `Name: message` (first line, no colours) and where pipeline code threw it. */
export function uncaughtLine(error: unknown, frames: readonly string[] = []): string {
  let text = String(error);
  if (error instanceof Error) {
    // A dynamic import's syntax error arrives as "TypeError: SyntaxError: ...".
    text = /^\w*Error: /.test(error.message) ? error.message : `${error.name}: ${error.message}`;
  }
  const stack = error instanceof Error ? (error.stack ?? "").split("\n") : [];
  return stripAnsi(text).split("\n")[0] + userFrame([...frames, ...stack]);
}
