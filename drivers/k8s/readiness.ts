/**
 * Whether a pod has started, and why not: a container running or terminated is started; an
 * image that cannot be pulled (`ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`,
 * `ErrImageNeverPull`) is `image_not_found` with the kubelet's event message; an unschedulable
 * pod, `CreateContainerConfigError`, `CreateContainerError`, `RunContainerError` or
 * `CrashLoopBackOff` fail at once with their reason; a command that does not exist is
 * `command_not_found`. A pod still Pending after `start_timeout` fails with the last event.
 *
 * @module
 */

import type { V1ContainerState, V1Pod } from "@kubernetes/client-node";
import { DriverError } from "../contract.ts";
import type { KubeHttp } from "./http.ts";

const IMAGE_REASONS = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "RegistryUnavailable",
]);
const FATAL_REASONS = new Set([
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
  "CrashLoopBackOff",
  "PreCreateHookError",
  "PostStartHookError",
]);
const NOT_FOUND = /executable file not found|no such file or directory/i;

/** How far a pod got. */
export type PodProgress =
  | { readonly kind: "pending" }
  | { readonly kind: "started"; readonly state: V1ContainerState }
  | { readonly kind: "gone" }
  | {
    readonly kind: "failed";
    readonly code: "image_not_found" | "command_not_found" | "failed";
    readonly reason: string;
    readonly message: string;
  };

/** Classifies a pod (`null`: deleted). */
export function progressOf(pod: V1Pod | null): PodProgress {
  if (pod === null) return { kind: "gone" };
  const status = pod.status?.containerStatuses?.[0];
  const state = status?.state;
  if (state?.terminated) {
    const t = state.terminated;
    if ((t.reason === "StartError" || t.reason === "ContainerCannotRun") && t.message) {
      return {
        kind: "failed",
        code: NOT_FOUND.test(t.message) ? "command_not_found" : "failed",
        reason: t.reason,
        message: t.message,
      };
    }
    return { kind: "started", state };
  }
  if (state?.running) return { kind: "started", state };
  const waiting = state?.waiting;
  if (waiting?.reason && IMAGE_REASONS.has(waiting.reason)) {
    return {
      kind: "failed",
      code: "image_not_found",
      reason: waiting.reason,
      message: waiting.message ?? waiting.reason,
    };
  }
  if (waiting?.reason && FATAL_REASONS.has(waiting.reason)) {
    const message = waiting.message ?? waiting.reason;
    return {
      kind: "failed",
      code: NOT_FOUND.test(message) ? "command_not_found" : "failed",
      reason: waiting.reason,
      message,
    };
  }
  const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  if (scheduled?.status === "False" && scheduled.reason === "Unschedulable") {
    return {
      kind: "failed",
      code: "failed",
      reason: "Unschedulable",
      message: scheduled.message ?? "no node fits the pod",
    };
  }
  if (pod.status?.phase === "Failed" || pod.status?.phase === "Succeeded") {
    return {
      kind: "failed",
      code: "failed",
      reason: pod.status.reason ?? pod.status.phase,
      message: pod.status.message ??
        `the pod ended (${pod.status.phase}) before its container started`,
    };
  }
  return { kind: "pending" };
}

interface EventItem {
  readonly type?: string;
  readonly reason?: string;
  readonly message?: string;
  readonly lastTimestamp?: string;
  readonly eventTime?: string;
  readonly metadata?: { readonly creationTimestamp?: string };
}

/** The pod's events, oldest first. */
export async function podEvents(
  http: KubeHttp,
  namespace: string,
  pod: string,
): Promise<EventItem[]> {
  const list = await http.json<{ items: EventItem[] }>(
    "GET",
    `/api/v1/namespaces/${namespace}/events`,
    { query: { fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${pod}` } },
  ).catch(() => ({ items: [] as EventItem[] }));
  const at = (e: EventItem) =>
    Date.parse(e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp ?? "") || 0;
  return [...list.items].sort((a, b) => at(a) - at(b));
}

/** The one-line error for a pod that could not start, with the best event message. */
export async function startFailure(
  http: KubeHttp,
  namespace: string,
  pod: string,
  image: string,
  failed: Extract<PodProgress, { kind: "failed" }>,
): Promise<DriverError> {
  if (failed.code === "image_not_found") {
    const events = await podEvents(http, namespace, pod);
    const pull = events.filter((e) =>
      e.type === "Warning" &&
      /^Failed to pull image|InspectFailed|Failed to apply default image tag/.test(e.message ?? "")
    ).pop() ??
      events.filter((e) => e.type === "Warning" && e.reason !== "BackOff").pop();
    const detail = pull?.message ?? failed.message;
    return new DriverError(
      "image_not_found",
      `image ${image} could not be pulled (${failed.reason}): ${detail.split("\n")[0]}`,
    );
  }
  if (failed.code === "command_not_found") {
    return new DriverError(
      "command_not_found",
      `pod ${pod}: the command was not found in image ${image} (${failed.message.split("\n")[0]})`,
    );
  }
  return new DriverError(
    "failed",
    `pod ${pod} could not start: ${failed.reason}: ${failed.message.split("\n")[0]}`,
  );
}

/** The error for a pod still Pending after the start timeout, with the last event. */
export async function pendingTimeout(
  http: KubeHttp,
  namespace: string,
  pod: string,
  timeoutMs: number,
): Promise<DriverError> {
  const events = await podEvents(http, namespace, pod);
  const last = events.filter((e) => e.type === "Warning").pop() ?? events.pop();
  return new DriverError(
    "failed",
    `pod ${pod} did not start within ${Math.round(timeoutMs / 1000)}s (start_timeout)${
      last ? `: ${last.reason}: ${last.message?.split("\n")[0]}` : ""
    }; raise start_timeout or check the cluster's capacity`,
  );
}
