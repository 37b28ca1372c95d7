/**
 * The messages between the pipeline worker and the runner. The worker owns no
 * permissions to do anything itself; every task, volume and sandbox operation is a
 * `call` the runner answers with a `reply`.
 *
 * @module
 */

import type { PipelineHost } from "../dsl/host.ts";

/** The host methods callable over RPC. */
export type HostMethod = keyof PipelineHost;

/** An error as it crosses the worker boundary. */
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

/** What the pipeline sees as its context (the signal is rebuilt in the worker). */
export interface WireContext {
  /** Run ID. */
  readonly runId: string;
  /** Driver name. */
  readonly driver: string;
  /** Namespace. */
  readonly namespace: string;
  /** Arguments after `--`. */
  readonly args: readonly string[];
}

/** Worker → runner. */
export type WorkerMessage =
  | {
    readonly kind: "call";
    readonly id: number;
    readonly method: HostMethod;
    readonly args: readonly unknown[];
    readonly streamOutput: boolean;
  }
  | { readonly kind: "log"; readonly level: "info" | "warn" | "error"; readonly message: string }
  | { readonly kind: "loaded"; readonly name: string }
  | { readonly kind: "load-error"; readonly message: string }
  | { readonly kind: "uncaught"; readonly message: string }
  | { readonly kind: "done"; readonly error?: WireError };

/** Runner → worker. */
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
