/**
 * Names and labels of the k8s driver's objects: pod and claim names are DNS-1123 labels with a
 * hash suffix (unique per run and task), label values are valid Kubernetes label values (a value
 * that is not becomes a hash, the original kept in an annotation). The label keys are the docker
 * driver's, so both drivers agree on what a PocketCI resource is.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { LABEL, type LabelledKind } from "../docker/labels.ts";

export { LABEL };

/** Annotation keys carrying values a label cannot hold. */
export const ANNOTATION = {
  /** The PocketCI namespace as given. */
  namespace: "io.pocketci/namespace",
  /** The logical name as given. */
  name: "io.pocketci/name",
  /** A keyed cache's key as given. */
  key: "io.pocketci/key",
} as const;

/** A short hex hash of `parts`. */
export function shortHash(...parts: string[]): string {
  return createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, 10);
}

/** A DNS-1123 label (`[a-z0-9-]`, at most 63) `prefix-<readable part>-<hash of unique>`. */
export function objectName(prefix: string, readable: string, unique: string): string {
  const hash = shortHash(unique);
  const part = readable.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "")
    .slice(0, 63 - prefix.length - hash.length - 2).replace(/-+$/, "");
  return part ? `${prefix}-${part}-${hash}` : `${prefix}-${hash}`;
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** `value` when it is a valid label value, else `h-` plus a hash of it. */
export function labelValue(value: string): string {
  return value.length <= 63 && LABEL_VALUE.test(value) ? value : `h-${shortHash(value)}`;
}

/** The labels (and annotations) of one object. */
export function labelsFor(
  namespace: string,
  runId: string,
  kind: LabelledKind,
  extra: { task?: string; name?: string; key?: string } = {},
): { labels: Record<string, string>; annotations: Record<string, string> } {
  const labels: Record<string, string> = {
    [LABEL.managed]: "true",
    [LABEL.namespace]: labelValue(namespace),
    [LABEL.run]: labelValue(runId),
    [LABEL.kind]: kind,
  };
  const annotations: Record<string, string> = { [ANNOTATION.namespace]: namespace };
  if (extra.task !== undefined) labels[LABEL.task] = labelValue(extra.task);
  if (extra.name !== undefined) {
    labels[LABEL.name] = labelValue(extra.name);
    annotations[ANNOTATION.name] = extra.name;
  }
  if (extra.key !== undefined) {
    labels[LABEL.key] = labelValue(extra.key);
    annotations[ANNOTATION.key] = extra.key;
  }
  return { labels, annotations };
}

/** A label selector `k=v,k=v` for the given labels. */
export function selector(labels: Record<string, string>): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(",");
}
