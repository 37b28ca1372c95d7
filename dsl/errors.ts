/**
 * The error a task or sandbox call rejects with.
 *
 * @module
 */

import type { TaskResult } from "./types.ts";

/** Describes why a result is not a success, in one line (with the attempts of a retried task). */
export function describeResult(result: TaskResult): string {
  const attempts = result.attempts > 1 ? ` (after ${result.attempts} attempts)` : "";
  return describeStatus(result) + attempts;
}

function describeStatus(result: TaskResult): string {
  switch (result.status) {
    case "success":
      return `task "${result.name}" succeeded`;
    case "failure":
      return `task "${result.name}" failed with exit code ${result.code}`;
    case "timeout":
      return `task "${result.name}" timed out${result.error ? ` (${result.error})` : ""}`;
    case "cancelled":
      return `task "${result.name}" was cancelled${result.error ? ` (${result.error})` : ""}`;
    case "error":
      return `task "${result.name}" could not run: ${result.error ?? "unknown error"}`;
  }
}

/** A task failed, timed out, was cancelled or could not run; `result` says which. */
export class TaskError extends Error {
  /** The task's result. */
  readonly result: TaskResult;
  /** Creates an error carrying the result. */
  constructor(result: TaskResult) {
    super(describeResult(result));
    this.name = "TaskError";
    this.result = result;
  }
}

/** Resolves with the result, or rejects with {@link TaskError} when the status calls for it. */
export function settle(result: TaskResult, allowFailure: boolean): TaskResult {
  if (result.status === "success") return result;
  if (allowFailure && (result.status === "failure" || result.status === "timeout")) return result;
  throw new TaskError(result);
}
