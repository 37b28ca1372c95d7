/**
 * The runner's record of `group()`s: IDs, nesting, `group.start`/`group.end` events and
 * durations. Pipeline code is untrusted, so a parent or task's group ID must be one this
 * run handed out, and a group ends once.
 *
 * @module
 */

import type { GroupInfo } from "../dsl/host.ts";
import { checkName } from "../dsl/validate.ts";
import type { GroupStatus, RunEvent } from "./events.ts";

/** The most groups one run may open (a runaway loop is refused, not recorded forever). */
export const MAX_GROUPS = 10_000;

/** The longest group name kept. */
export const MAX_GROUP_NAME = 200;

interface OpenGroup {
  readonly name: string;
  readonly parentId?: string;
  readonly startedAt: number;
  ended: boolean;
}

/** The groups of one run. */
export class RunGroups {
  readonly #emit: (event: RunEvent) => void;
  readonly #groups = new Map<string, OpenGroup>();

  /** Groups whose events go to `emit`. */
  constructor(emit: (event: RunEvent) => void) {
    this.#emit = emit;
  }

  /** Opens a group (`request` as pipeline code sent it) and emits `group.start`. */
  start(request: unknown): GroupInfo {
    if (typeof request !== "object" || request === null || Array.isArray(request)) {
      throw new Error("invalid group request: pipeline code must use group()");
    }
    const fields = request as Record<string, unknown>;
    const name = checkName("group", fields.name);
    if (name.length > MAX_GROUP_NAME) {
      throw new Error(
        `group() names are at most ${MAX_GROUP_NAME} characters; shorten "${name.slice(0, 40)}..."`,
      );
    }
    const parentId = fields.parentId === undefined ? undefined : this.check(fields.parentId);
    if (this.#groups.size >= MAX_GROUPS) {
      throw new Error(`a run may open at most ${MAX_GROUPS} groups`);
    }
    const id = `group-${this.#groups.size + 1}`;
    this.#groups.set(id, {
      name,
      ...(parentId === undefined ? {} : { parentId }),
      startedAt: performance.now(),
      ended: false,
    });
    this.#emit({ type: "group.start", id, name, ...(parentId === undefined ? {} : { parentId }) });
    return { id };
  }

  /**
   * Ends a group with how its function ended (`cancelled` when the run was cancelled and
   * it did not succeed); a second end of the same group is ignored.
   */
  end(id: unknown, outcome: unknown, cancelled: boolean): void {
    const checked = this.check(id);
    if (outcome !== "success" && outcome !== "failure") {
      throw new Error("invalid group outcome: pipeline code must use group()");
    }
    this.#end(checked, outcome === "failure" && cancelled ? "cancelled" : outcome);
  }

  #end(id: string, status: GroupStatus): void {
    const group = this.#groups.get(id)!;
    if (group.ended) return;
    group.ended = true;
    this.#emit({
      type: "group.end",
      id,
      name: group.name,
      ...(group.parentId === undefined ? {} : { parentId: group.parentId }),
      status,
      durationMs: Math.round(performance.now() - group.startedAt),
    });
  }

  /** Ends every group still open (innermost first) as cancelled: the pipeline stopped. */
  closeAll(): void {
    for (const id of [...this.#groups.keys()].reverse()) this.#end(id, "cancelled");
  }

  /** A group ID this run handed out (open or ended); throws a one-line error otherwise. */
  check(id: unknown): string {
    if (typeof id !== "string" || !this.#groups.has(id)) {
      throw new Error("invalid group ID: pipeline code must use group()");
    }
    return id;
  }
}
