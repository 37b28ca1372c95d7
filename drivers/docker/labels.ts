/**
 * The labels on every container, volume and network the docker driver creates, and the names it
 * gives them. Labels are how `close()` and `gc` find a run's resources.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** Label keys. */
export const LABEL = {
  /** Always `true`: the resource belongs to PocketCI. */
  managed: "io.pocketci.managed",
  /** The namespace. */
  namespace: "io.pocketci.namespace",
  /** The run that created it. */
  run: "io.pocketci.run",
  /** The task or sandbox ID (containers). */
  task: "io.pocketci.task",
  /** `task`, `sandbox`, `service`, `helper`, `netns` (network holder), `volume`, `cache` or `network`. */
  kind: "io.pocketci.kind",
  /** The logical name the pipeline gave (volumes, caches, sandboxes). */
  name: "io.pocketci.name",
  /** A keyed cache's key. */
  key: "io.pocketci.key",
} as const;

/** What a labelled resource is. */
export type LabelledKind =
  | "task"
  | "sandbox"
  | "service"
  | "helper"
  | "netns"
  | "volume"
  | "cache"
  | "network";

/** The labels for one resource. */
export function labelsFor(
  namespace: string,
  runId: string,
  kind: LabelledKind,
  extra: { task?: string; name?: string; key?: string } = {},
): Record<string, string> {
  const labels: Record<string, string> = {
    [LABEL.managed]: "true",
    [LABEL.namespace]: namespace,
    [LABEL.run]: runId,
    [LABEL.kind]: kind,
  };
  if (extra.task !== undefined) labels[LABEL.task] = extra.task;
  if (extra.name !== undefined) labels[LABEL.name] = extra.name;
  if (extra.key !== undefined) labels[LABEL.key] = extra.key;
  return labels;
}

/**
 * A Docker-safe object name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`) built from parts. Parts that had to be
 * changed, or a name that is too long, get a short hash of the original so names stay unique.
 */
export function resourceName(...parts: string[]): string {
  const original = parts.join("-");
  let name = original.replace(/[^a-zA-Z0-9_.-]+/g, "-").replace(/^[^a-zA-Z0-9]+/, "");
  if (name !== original || name.length > 120) {
    const hash = createHash("sha256").update(original).digest("hex").slice(0, 10);
    name = `${name.slice(0, 110)}-${hash}`;
  }
  return name;
}
