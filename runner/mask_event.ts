/**
 * Masking a run event: everything pipeline code and tasks produced (names, commands,
 * output, messages, errors) is masked; the fields PocketCI generates itself (the run ID,
 * paths, task IDs, the driver's name) are shown as they are, even when a secret happens
 * to occur in them (a state directory named after it).
 *
 * @module
 */

import type { RunEvent } from "./events.ts";
import type { Masker } from "./mask.ts";

/** Top-level fields PocketCI generates, never masked. */
const OWN_FIELDS = ["runId", "pipeline", "driver", "logDir", "id", "groupId", "parentId"] as const;

/** `event` with its pipeline- and task-produced text masked and PocketCI's own fields as they are. */
export function maskEvent(masker: Masker, event: RunEvent): RunEvent {
  if (masker.empty) return event;
  const masked = masker.maskDeep(event) as Record<string, unknown>;
  const original = event as unknown as Record<string, unknown>;
  for (const field of OWN_FIELDS) {
    if (field in original) masked[field] = original[field];
  }
  if (event.type === "run.end") {
    if (event.failedTask !== undefined) {
      masked.failedTask = {
        ...(masked.failedTask as Record<string, unknown>),
        id: event.failedTask.id,
      };
    }
    // A leftover's ID may hold the namespace (user-given); its paths under the state
    // directory are protected by the masker itself.
    masked.leftovers = event.leftovers.map((leftover, index) => ({
      ...(masked.leftovers as Record<string, unknown>[])[index],
      kind: leftover.kind,
    }));
  }
  return masked as unknown as RunEvent;
}
