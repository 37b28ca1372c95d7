/**
 * How `group()`s look in the text output: a start line and an end line with the status
 * and duration, both indented two spaces per level of nesting (and so are the lines of the
 * tasks started inside), a `GROUP` table in the summary, and the CI system's own folding
 * markers (see folding.ts) around top-level groups.
 *
 * Folding markers cannot nest reliably (GitHub Actions does not nest groups, Buildkite has
 * no end marker) and a folded section holds whatever is printed while it is open, so
 * markers are written only for a top-level group that runs alone: a section is closed as
 * soon as another top-level group or a task outside every group starts beside it, and what
 * runs from then on is shown unfolded (still indented and labelled).
 *
 * @module
 */

import { foldEnd, type FoldingStyle, foldStart } from "./folding.ts";
import type { GroupStatus, RunEvent } from "./events.ts";

interface GroupRecord {
  readonly path: string;
  readonly depth: number;
  end?: { readonly status: GroupStatus; readonly durationMs: number };
}

/** What the view writes through. */
export interface GroupWriter {
  /** A line of PocketCI's own (timestamped with --timestamps). */
  line(text: string): void;
  /** A folding marker, written as is (a CI system only sees it at a line's start). */
  marker(text: string): void;
  /** Colours text when the output is a terminal. */
  paint(code: number, text: string): string;
  /** Formats a duration. */
  duration(ms: number): string;
}

const STATUS_COLOURS: Record<GroupStatus, number> = { success: 32, failure: 31, cancelled: 33 };

/** The groups of one run as the text reporter shows them. */
export class GroupView {
  readonly #writer: GroupWriter;
  readonly #folding: FoldingStyle | undefined;
  readonly #clock: () => Date;
  readonly #groups = new Map<string, GroupRecord>();
  /** Tasks' groups, by task ID. */
  readonly #taskGroup = new Map<string, string>();
  /** Top-level groups still open. */
  readonly #openTop = new Set<string>();
  /** The top-level group whose folded section is open. */
  #folded: string | undefined;

  /** A view writing through `writer`, with `folding` markers when given. */
  constructor(writer: GroupWriter, folding: FoldingStyle | undefined, clock: () => Date) {
    this.#writer = writer;
    this.#folding = folding;
    this.#clock = clock;
  }

  /** Two spaces per level of the group task `taskId` was started in. */
  indentOf(taskId: string): string {
    return this.indentOfGroup(this.#taskGroup.get(taskId));
  }

  /** Two spaces per level of group `groupId` and its parents (none for an unknown group). */
  indentOfGroup(groupId: string | undefined): string {
    const depth = groupId === undefined ? -1 : this.#groups.get(groupId)?.depth ?? -1;
    return "  ".repeat(depth + 1);
  }

  #closeFold(failed: boolean): void {
    if (this.#folded === undefined || this.#folding === undefined) return;
    this.#writer.marker(foldEnd(this.#folding, this.#folded, failed, this.#clock()));
    this.#folded = undefined;
  }

  /** A task or call starts (first attempt or later): remembers its group. */
  taskStarted(taskId: string, groupId: string | undefined): void {
    if (groupId !== undefined) this.#taskGroup.set(taskId, groupId);
    // Work outside every group would print inside the folded section.
    else if (this.#folded !== undefined) this.#closeFold(false);
  }

  /** Renders `group.start` or `group.end`. */
  event(event: Extract<RunEvent, { type: "group.start" | "group.end" }>): void {
    if (event.type === "group.start") this.#start(event);
    else this.#end(event);
  }

  #start(event: Extract<RunEvent, { type: "group.start" }>): void {
    const parent = event.parentId === undefined ? undefined : this.#groups.get(event.parentId);
    const record: GroupRecord = {
      path: parent === undefined ? event.name : `${parent.path} › ${event.name}`,
      depth: parent === undefined ? 0 : parent.depth + 1,
    };
    this.#groups.set(event.id, record);
    if (parent === undefined) {
      if (this.#openTop.size === 0 && this.#folding !== undefined) {
        this.#writer.marker(foldStart(this.#folding, event.id, event.name, this.#clock()));
        this.#folded = event.id;
      } else {
        this.#closeFold(false);
      }
      this.#openTop.add(event.id);
    }
    this.#writer.line(
      "  ".repeat(record.depth) + this.#writer.paint(1, `┌ ${record.path}`),
    );
  }

  #end(event: Extract<RunEvent, { type: "group.end" }>): void {
    const record = this.#groups.get(event.id);
    if (record === undefined) return;
    record.end = { status: event.status, durationMs: event.durationMs };
    if (this.#folded === event.id) this.#closeFold(event.status !== "success");
    this.#openTop.delete(event.id);
    const text = `└ ${record.path}: ${event.status} in ${this.#writer.duration(event.durationMs)}`;
    this.#writer.line(
      "  ".repeat(record.depth) +
        (event.status === "success"
          ? this.#writer.paint(1, text)
          : this.#writer.paint(STATUS_COLOURS[event.status], text)),
    );
  }

  /** The summary's group table (empty without groups), in start order. */
  summaryLines(): string[] {
    if (this.#groups.size === 0) return [];
    const rows = [...this.#groups.values()].map((group) => [
      group.path,
      group.end?.status ?? "running",
      group.end === undefined ? "-" : this.#writer.duration(group.end.durationMs),
    ]);
    const header = ["GROUP", "STATUS", "TIME"];
    const widths = header.map((title, i) =>
      Math.max(title.length, ...rows.map((r) => r[i].length))
    );
    const format = (row: string[]) =>
      row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd();
    return ["", format(header), ...rows.map(format)];
  }
}
