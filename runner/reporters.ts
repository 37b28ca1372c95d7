/**
 * Reporters: NDJSON for machines, prefixed live lines plus a summary table for
 * people, and the per-run log directory.
 *
 * @module
 */

import { SH_PRELUDE } from "../dsl/config.ts";
import type { TaskStatus } from "../dsl/types.ts";
import { eventLine, type Reporter, type RunEvent } from "./events.ts";
import type { FoldingStyle } from "./folding.ts";
import { attemptText } from "./retry.ts";
import { GroupView } from "./text_groups.ts";
import { timestamped } from "./timestamps.ts";
import { writeTextSync } from "./write_text.ts";

/** Where a reporter writes. */
export interface Output {
  /** Writes text to standard output. */
  stdout(text: string): void;
  /** Writes text to standard error. */
  stderr(text: string): void;
}

/** Writes NDJSON events to stdout. */
export class JsonReporter implements Reporter {
  readonly #out: Output;
  /** Creates a reporter writing to `out`. */
  constructor(out: Output) {
    this.#out = out;
  }
  /** Writes one line. */
  event(event: RunEvent): void {
    this.#out.stdout(eventLine(event));
  }
}

/** Longest unterminated line kept before it is printed in pieces. */
const MAX_PARTIAL_LINE = 64 * 1024;

/**
 * A command as one short line for the live output; `sh(script)`'s `set -eu` prelude is left
 * out (the README documents it), so the line shows the script as written.
 */
export function commandLine(command: readonly string[]): string {
  const shown = command.length === 3 && command[0] === "sh" && command[1] === "-c" &&
      command[2].startsWith(SH_PRELUDE)
    ? ["sh", "-c", command[2].slice(SH_PRELUDE.length)]
    : command;
  const text = shown.join(" ").replace(/\s*\n\s*/g, "; ").trim();
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

const COLOURS = [36, 35, 33, 32, 34, 91, 96, 95, 93, 92];
/** A summary row's status: the task's, or `skipped` for one that never started. */
type RowStatus = TaskStatus | "skipped";

const STATUS_COLOURS: Record<RowStatus, number> = {
  success: 32,
  failure: 31,
  timeout: 33,
  cancelled: 33,
  error: 31,
  skipped: 2,
};

/** One summary row; `end` is filled in when the task ends. */
interface SummaryRow {
  readonly label: string;
  end?: {
    readonly status: RowStatus;
    readonly code: number | null;
    /** From `task.start` to the end (pull, container creation and removal included). */
    readonly totalMs?: number;
    /** From the process's start to its exit; absent when it never started. */
    readonly runMs?: number;
    readonly allowFailure: boolean;
    /** With `.retry()`: the attempts that ran. */
    readonly attempts?: number;
  };
}

/** Options of the text reporter. */
export interface TextReporterOptions {
  /** ANSI colour. */
  readonly colour: boolean;
  /** The driver's name, shown in the summary. */
  readonly driver: string;
  /** `--timestamps`: every line starts with the time it was written. */
  readonly timestamps?: boolean;
  /** The CI system's folding markers around top-level groups. */
  readonly folding?: FoldingStyle;
  /** The time (tests pin it). */
  readonly clock?: () => Date;
}

/** `failed (exit 1)`, `timed out`, ... for the line announcing a retry. */
function endedText(event: Extract<RunEvent, { type: "task.end" }>): string {
  switch (event.status) {
    case "failure":
      return `failed (exit ${event.code})`;
    case "timeout":
      return "timed out";
    case "error":
      return `could not run (${event.error ?? "unknown error"})`;
    default:
      return event.status;
  }
}

/** ` (3 attempts)` for a task that ran more than once. */
function attemptsText(attempts: number | undefined): string {
  return attempts !== undefined && attempts > 1 ? ` (${attempts} attempts)` : "";
}

/** Formats milliseconds as `850ms`, `2.3s` or `1m05s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes}m${String(seconds).padStart(2, "0")}s`;
}

/** Live output prefixed by task name (coloured on a TTY) and a summary table at the end. */
export class TextReporter implements Reporter {
  readonly #out: Output;
  readonly #colour: boolean;
  readonly #driver: string;
  readonly #labels = new Map<string, string>();
  readonly #colourOf = new Map<string, number>();
  readonly #nameCounts = new Map<string, number>();
  readonly #partial = new Map<string, string>();
  /** Rows in start order (a task that never started is added when it ends). */
  readonly #rows: SummaryRow[] = [];
  readonly #rowOf = new Map<string, SummaryRow>();
  readonly #groups: GroupView;

  /** Creates a reporter writing to `out`, with ANSI colour when `colour`. */
  constructor(out: Output, options: TextReporterOptions) {
    const clock = options.clock ?? (() => new Date());
    this.#out = options.timestamps ? timestamped(out, clock) : out;
    this.#colour = options.colour;
    this.#driver = options.driver;
    const writer = {
      line: (text: string) => this.#out.stderr(text + "\n"),
      // Markers must start their line, so they never get a timestamp.
      marker: (text: string) => out.stderr(text),
      paint: (code: number, text: string) => this.#paint(code, text),
      duration: formatDuration,
    };
    this.#groups = new GroupView(writer, options.folding, clock);
  }

  #paint(code: number, text: string): string {
    return this.#colour ? `\x1b[${code}m${text}\x1b[0m` : text;
  }

  #label(id: string, name: string): string {
    let label = this.#labels.get(id);
    if (label === undefined) {
      const count = (this.#nameCounts.get(name) ?? 0) + 1;
      this.#nameCounts.set(name, count);
      label = count === 1 ? name : `${name}#${count}`;
      this.#labels.set(id, label);
      this.#colourOf.set(id, COLOURS[(this.#labels.size - 1) % COLOURS.length]);
    }
    return label;
  }

  /** Writes lines of a task's output with its prefix, in one write. */
  #lines(id: string, stream: "stdout" | "stderr", lines: readonly string[]): void {
    if (lines.length === 0) return;
    const prefix = this.#groups.indentOf(id) +
      this.#paint(this.#colourOf.get(id) ?? 0, `${this.#labels.get(id)} |`);
    let text = "";
    for (const line of lines) text += `${prefix} ${line}\n`;
    if (stream === "stdout") this.#out.stdout(text);
    else this.#out.stderr(text);
  }

  #flush(id: string): void {
    for (const stream of ["stdout", "stderr"] as const) {
      const key = `${id}\u0000${stream}`;
      const rest = this.#partial.get(key);
      if (rest) this.#lines(id, stream, [rest]);
      this.#partial.delete(key);
    }
  }

  /**
   * Prints the complete lines of a chunk of output and keeps the unterminated rest,
   * without joining the chunk to what was kept (a 200 MB line arrives as thousands of
   * chunks).
   */
  #output(id: string, stream: "stdout" | "stderr", data: string): void {
    const key = `${id}\u0000${stream}`;
    const lines: string[] = [];
    let rest = this.#partial.get(key) ?? "";
    let start = 0;
    for (let end = data.indexOf("\n"); end !== -1; end = data.indexOf("\n", start)) {
      lines.push(rest + data.slice(start, end));
      rest = "";
      start = end + 1;
    }
    // A line without an end must not grow without bound: print it in pieces.
    while (rest.length + data.length - start > MAX_PARTIAL_LINE) {
      const end = start + MAX_PARTIAL_LINE - rest.length;
      lines.push(rest + data.slice(start, end));
      rest = "";
      start = end;
    }
    this.#partial.set(key, rest + data.slice(start));
    this.#lines(id, stream, lines);
  }

  /** Renders one event. */
  event(event: RunEvent): void {
    switch (event.type) {
      case "task.start": {
        const label = this.#label(event.id, event.name);
        // A later attempt of a retried task keeps the first attempt's row.
        if (!this.#rowOf.has(event.id)) {
          const row: SummaryRow = { label };
          this.#rows.push(row);
          this.#rowOf.set(event.id, row);
        }
        this.#groups.taskStarted(event.id, event.groupId);
        const attempt = event.attempt === undefined || event.maxAttempts === undefined
          ? ""
          : ` (${attemptText(event.attempt, event.maxAttempts)})`;
        this.#out.stderr(
          this.#groups.indentOf(event.id) +
            this.#paint(2, `▶ ${label}: ${commandLine(event.command)}${attempt}`) + "\n",
        );
        break;
      }
      case "task.output":
        this.#output(event.id, event.stream, event.data);
        break;
      case "task.end": {
        this.#flush(event.id);
        const label = this.#label(event.id, event.name);
        let row = this.#rowOf.get(event.id);
        // A retried task's row stays for its next attempt.
        if (event.retryInMs === undefined) this.#rowOf.delete(event.id);
        if (row === undefined) {
          row = { label };
          this.#rows.push(row);
        }
        // No start event: it was queued or requested when the run was cancelled, so never ran
        // (unless an earlier attempt did).
        const started = event.totalMs !== undefined;
        const ranBefore = row.end !== undefined;
        row.end = {
          status: !started && !ranBefore && event.status === "cancelled" ? "skipped" : event.status,
          code: event.code,
          totalMs: event.totalMs,
          runMs: started ? event.durationMs : undefined,
          allowFailure: event.allowFailure,
          ...(event.attempt === undefined
            ? {}
            : { attempts: started ? event.attempt : event.attempt - 1 }),
        };
        const indent = this.#groups.indentOf(event.id);
        if (event.status === "error" && event.error) {
          this.#out.stderr(indent + this.#paint(31, `✗ ${label}: ${event.error}`) + "\n");
        }
        if (event.retryInMs !== undefined && event.attempt && event.maxAttempts) {
          const wait = event.retryInMs > 0 ? ` in ${formatDuration(event.retryInMs)}` : "";
          this.#out.stderr(
            indent + this.#paint(
              33,
              `↻ ${label}: ${attemptText(event.attempt, event.maxAttempts)} ${
                endedText(event)
              }; retrying${wait}`,
            ) + "\n",
          );
        }
        break;
      }
      case "service.start": {
        const label = this.#label(event.id, event.name);
        const what = event.command ? commandLine(event.command) : (event.image ?? "");
        this.#out.stderr(this.#paint(2, `▶ ${label} (service): ${what}`) + "\n");
        break;
      }
      case "service.ready":
        this.#out.stderr(
          this.#paint(2, `✓ ${this.#label(event.id, event.name)} (service) ready`) + "\n",
        );
        break;
      case "service.end":
        this.#flush(event.id);
        // A failed start rejects start() with the whole story; the crash of a running
        // service is told only here.
        if (event.status === "exited" && event.error) {
          this.#out.stderr(this.#paint(31, `✗ ${event.error}`) + "\n");
        } else if (event.status === "failed") {
          const label = this.#label(event.id, event.name);
          this.#out.stderr(this.#paint(31, `✗ ${label} (service) failed to start`) + "\n");
        }
        break;
      case "group.start":
      case "group.end":
        this.#groups.event(event);
        break;
      case "log": {
        const indent = this.#groups.indentOfGroup(event.groupId);
        const text = indent === ""
          ? event.message
          : indent + event.message.replaceAll("\n", "\n" + indent);
        if (event.level === "info") this.#out.stdout(text + "\n");
        else this.#out.stderr(text + "\n");
        break;
      }
      case "warning":
        this.#out.stderr(this.#paint(33, `warning: ${event.message}`) + "\n");
        break;
      case "run.end":
        this.#out.stderr(this.#summary(event));
        break;
      default:
        break;
    }
  }

  #summary(event: Extract<RunEvent, { type: "run.end" }>): string {
    const lines: string[] = [];
    // A row whose task has not ended by run.end cannot occur (the runner waits for every
    // task), but would show as running rather than vanish.
    const rows = this.#rows.map((row) => ({ label: row.label, ...row.end }));
    if (rows.length > 0) {
      const header = ["TASK", "STATUS", "CODE", "TOTAL", "RUN"];
      const duration = (ms: number | undefined) => ms === undefined ? "-" : formatDuration(ms);
      const cells = rows.map((row) => [
        row.label,
        row.status === undefined
          ? "running"
          : row.allowFailure && (row.status === "failure" || row.status === "timeout")
          ? `${row.status} (allowed)${attemptsText(row.attempts)}`
          : `${row.status}${attemptsText(row.attempts)}`,
        row.code === null || row.code === undefined ? "-" : String(row.code),
        duration(row.totalMs),
        duration(row.runMs),
      ]);
      const widths = header.map((title, i) =>
        Math.max(title.length, ...cells.map((row) => row[i].length))
      );
      const format = (row: string[]) =>
        row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd();
      // TOTAL includes pulling the image and creating the container; RUN is the process alone.
      lines.push("", `${format(header)}  (driver: ${this.#driver})`);
      cells.forEach((row, index) => {
        const status = rows[index].status ?? "cancelled";
        const text = format(row);
        lines.push(status === "success" ? text : this.#paint(STATUS_COLOURS[status], text));
      });
    }
    lines.push(...this.#groups.summaryLines());
    lines.push("");
    if (event.error) {
      lines.push(this.#paint(31, `error: ${event.error}`));
      if (event.failedTask && event.failedTask.lastLines.length > 0) {
        lines.push(
          `last output of ${this.#labels.get(event.failedTask.id) ?? event.failedTask.name}:`,
        );
        for (const line of event.failedTask.lastLines) lines.push(`  ${line}`);
      }
    }
    for (const leftover of event.leftovers) {
      lines.push(
        this.#paint(
          33,
          `not removed: ${leftover.kind} ${leftover.id} (${leftover.reason}); run \`pocketci gc\``,
        ),
      );
    }
    const verdict = event.status === "success"
      ? this.#paint(32, "pipeline succeeded")
      : this.#paint(31, `pipeline ${event.status === "failure" ? "failed" : event.status}`);
    lines.push(
      `${verdict} in ${
        formatDuration(event.durationMs)
      } (exit ${event.exitCode}); logs: ${event.logDir}`,
    );
    return lines.join("\n") + "\n";
  }
}

/** Keeps every event in `events.jsonl` and each task's output in `<task id>.log`. */
export class LogDirReporter implements Reporter {
  readonly #dir: string;
  readonly #events: Deno.FsFile;
  readonly #tasks = new Map<string, Deno.FsFile>();

  private constructor(dir: string, events: Deno.FsFile) {
    this.#dir = dir;
    this.#events = events;
  }

  /** Creates the log directory. */
  static async create(dir: string): Promise<LogDirReporter> {
    await Deno.mkdir(dir, { recursive: true });
    const events = await Deno.open(`${dir}/events.jsonl`, { create: true, append: true });
    return new LogDirReporter(dir, events);
  }

  /** Appends the event, and task output to the task's log. */
  event(event: RunEvent): void {
    try {
      writeTextSync(this.#events, eventLine(event));
      if (event.type === "task.output") {
        let file = this.#tasks.get(event.id);
        if (file === undefined) {
          file = Deno.openSync(`${this.#dir}/${event.id}.log`, { create: true, append: true });
          this.#tasks.set(event.id, file);
        }
        writeTextSync(file, event.data);
      } else if (event.type === "task.end") {
        this.#tasks.get(event.id)?.close();
        this.#tasks.delete(event.id);
      }
    } catch {
      // Logging must never break a run; the live output still has everything.
    }
  }

  /** Closes the files. */
  close(): Promise<void> {
    for (const file of this.#tasks.values()) file.close();
    this.#tasks.clear();
    this.#events.close();
    return Promise.resolve();
  }
}
