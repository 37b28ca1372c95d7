/**
 * The run's event stream. `--json` prints these as NDJSON (one object per line,
 * each with `"v": 1` and a `"time"`); the text reporter renders them for people;
 * the log directory keeps all of them in `events.jsonl`.
 *
 * @module
 */

import type { TaskStatus } from "../dsl/types.ts";

/** The version of the NDJSON event format. */
export const EVENT_VERSION = 1;

/** How a run ended. */
export type RunStatus = "success" | "failure" | "timeout" | "cancelled" | "error";

/** How a `group()` ended. */
export type GroupStatus = "success" | "failure" | "cancelled";

/** Something left behind that `pocketci gc` can remove. */
export interface Leftover {
  /** Resource kind. */
  readonly kind: string;
  /** The driver's ID for it. */
  readonly id: string;
  /** Why it could not be removed. */
  readonly reason: string;
}

/** One event of a run. */
export type RunEvent =
  | {
    readonly type: "run.start";
    readonly runId: string;
    readonly pipeline: string;
    readonly driver: string;
    /** The driver services run on when it is not the run's (`--service-driver`). */
    readonly serviceDriver?: string;
    readonly namespace: string;
    readonly logDir: string;
  }
  | {
    readonly type: "task.start";
    readonly id: string;
    readonly name: string;
    readonly kind: "task" | "exec";
    readonly command: readonly string[];
    readonly image?: string;
    /** The `group()` it was started in. */
    readonly groupId?: string;
    /** With `.retry()`: this attempt's number, from 1. */
    readonly attempt?: number;
    /** With `.retry()`: the most attempts it may get (retries + 1). */
    readonly maxAttempts?: number;
  }
  | {
    readonly type: "task.output";
    readonly id: string;
    readonly name: string;
    readonly stream: "stdout" | "stderr";
    readonly data: string;
  }
  | {
    readonly type: "task.end";
    readonly id: string;
    readonly name: string;
    readonly kind: "task" | "exec";
    readonly status: TaskStatus;
    readonly code: number | null;
    /** From the process's start to its exit (what `TaskResult.durationMs` says). */
    readonly durationMs: number;
    /**
     * From `task.start` to the end: image pull, container creation and removal included.
     * Absent when the task never started.
     */
    readonly totalMs?: number;
    readonly allowFailure: boolean;
    readonly error?: string;
    /** The `group()` it was started in. */
    readonly groupId?: string;
    /** With `.retry()`: this attempt's number, from 1 (0: cancelled before its first). */
    readonly attempt?: number;
    /** With `.retry()`: the most attempts it may get (retries + 1). */
    readonly maxAttempts?: number;
    /** Present when another attempt follows: the wait before it, in milliseconds. */
    readonly retryInMs?: number;
  }
  | {
    readonly type: "group.start";
    readonly id: string;
    readonly name: string;
    /** The enclosing group. */
    readonly parentId?: string;
  }
  | {
    readonly type: "group.end";
    readonly id: string;
    readonly name: string;
    readonly parentId?: string;
    /** The function returned (`success`), threw (`failure`), or the run was cancelled. */
    readonly status: GroupStatus;
    /** From `group.start` to the end. */
    readonly durationMs: number;
  }
  | { readonly type: "sandbox.start"; readonly id: string; readonly name: string }
  | { readonly type: "sandbox.end"; readonly id: string; readonly name: string }
  | {
    readonly type: "service.start";
    readonly id: string;
    readonly name: string;
    readonly image?: string;
    /** The `.run()` command replacing the image's CMD, if any. */
    readonly command?: readonly string[];
  }
  | {
    readonly type: "service.ready";
    readonly id: string;
    readonly name: string;
    /** From `service.start` until the readiness check passed. */
    readonly durationMs: number;
    /** Published ports: `{ "5432": 49153 }` (service port to host port on 127.0.0.1). */
    readonly hostPorts: Readonly<Record<string, number>>;
  }
  | {
    readonly type: "service.end";
    readonly id: string;
    readonly name: string;
    /**
     * `stopped` by the pipeline or the end of the run, `exited` by itself while it ran, or
     * `failed` to start or get ready (`error` says why).
     */
    readonly status: "stopped" | "exited" | "failed";
    /** The exit code, when it is known. */
    readonly code?: number | null;
    readonly error?: string;
  }
  | {
    readonly type: "log";
    readonly level: "info" | "warn" | "error";
    readonly message: string;
    /** The `group()` pipeline code logged from (as it said; only its form is checked). */
    readonly groupId?: string;
  }
  | { readonly type: "warning"; readonly message: string }
  | {
    readonly type: "run.end";
    readonly status: RunStatus;
    readonly exitCode: number;
    readonly durationMs: number;
    readonly logDir: string;
    readonly error?: string;
    /** The stack of the error pipeline code threw (for the log directory; not printed as text). */
    readonly stack?: string;
    readonly failedTask?: {
      readonly id: string;
      readonly name: string;
      readonly lastLines: readonly string[];
    };
    readonly leftovers: readonly Leftover[];
  };

/** Receives events; must not throw. */
export interface Reporter {
  /** Handles one event (already masked). */
  event(event: RunEvent): void;
  /** Called once after `run.end`; flushes files. */
  close?(): Promise<void>;
}

/** The NDJSON form of an event. */
export function eventLine(event: RunEvent, time: Date = new Date()): string {
  return JSON.stringify({ v: EVENT_VERSION, time: time.toISOString(), ...event }) + "\n";
}
