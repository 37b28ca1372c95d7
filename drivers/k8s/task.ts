/**
 * A task pod from start to end: wait until its container started (or say why it cannot), feed
 * stdin through `pods/attach`, follow its output, take the exit status from
 * `state.terminated` (exitCode; a code above 128 is death by signal N-128; `OOMKilled`), and
 * stop it by deleting the pod with a grace period.
 *
 * @module
 */

import type { V1ContainerStateTerminated, V1Pod } from "@kubernetes/client-node";
import { DriverError, type ExitStatus, type OutputSink, type TaskHandle } from "../contract.ts";
import type { KubeHttp } from "./http.ts";
import { statusOf } from "./http.ts";
import { followLogs } from "./logs.ts";
import { CONTAINER } from "./pod_spec.ts";
import type { PodWatch } from "./pod_watch.ts";
import { pendingTimeout, progressOf, startFailure } from "./readiness.ts";

/** What a task needs from its driver. */
export interface PodContext {
  /** The API client. */
  readonly http: KubeHttp;
  /** The run's pod watch. */
  readonly watch: PodWatch;
  /** Kubernetes namespace. */
  readonly namespace: string;
  /** How long a pod may stay Pending. */
  readonly startTimeoutMs: number;
}

/** The exit status a terminated container state stands for. */
export function exitStatusOf(t: V1ContainerStateTerminated | undefined): ExitStatus {
  if (!t) return { code: 137, signal: 9 };
  const code = t.exitCode;
  const signal = t.signal ?? (code > 128 && code < 160 ? code - 128 : undefined);
  return {
    code,
    ...(signal !== undefined ? { signal } : {}),
    ...(t.reason === "OOMKilled" ? { oomKilled: true } : {}),
  };
}

function terminatedOf(pod: V1Pod | null | undefined): V1ContainerStateTerminated | undefined {
  return pod?.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state?.terminated;
}

/** Creates the pod (already built) and resolves once its container started. */
export async function createAndStart(
  ctx: PodContext,
  pod: V1Pod,
  image: string,
): Promise<V1Pod> {
  const name = pod.metadata!.name!;
  const created = await ctx.http.json<V1Pod>(
    "POST",
    `/api/v1/namespaces/${ctx.namespace}/pods`,
    { body: pod },
  );
  ctx.watch.observe(created);
  return await waitStarted(ctx, name, image);
}

/** Resolves once the pod's container started; rejects with the reason it cannot. */
export async function waitStarted(ctx: PodContext, name: string, image: string): Promise<V1Pod> {
  const timeout = AbortSignal.timeout(ctx.startTimeoutMs);
  let pod: V1Pod | null;
  try {
    pod = await ctx.watch.waitFor(name, (p) => progressOf(p).kind !== "pending", timeout);
  } catch {
    throw await pendingTimeout(ctx.http, ctx.namespace, name, ctx.startTimeoutMs);
  }
  const progress = progressOf(pod);
  if (progress.kind === "failed") {
    throw await startFailure(ctx.http, ctx.namespace, name, image, progress);
  }
  if (progress.kind === "gone") {
    throw new DriverError(
      "failed",
      `pod ${name} was deleted before its container started`,
    );
  }
  return pod!;
}

/** A started task pod. */
export class K8sTask implements TaskHandle {
  /** The task's run-scoped ID. */
  readonly id: string;
  /** The pod's name. */
  readonly pod: string;
  readonly #ctx: PodContext;
  readonly #done: Promise<ExitStatus>;
  readonly #onRemoved: () => Promise<void>;
  #removed?: Promise<void>;
  readonly #abort = new AbortController();

  /** Follows a started pod's output into `output`. */
  constructor(
    id: string,
    pod: string,
    ctx: PodContext,
    output: OutputSink,
    onRemoved: () => Promise<void>,
  ) {
    this.id = id;
    this.pod = pod;
    this.#ctx = ctx;
    this.#onRemoved = onRemoved;
    this.#done = this.#follow(output);
  }

  #ended(): boolean {
    const latest = this.#ctx.watch.latest(this.pod);
    return latest === null || terminatedOf(latest) !== undefined;
  }

  async #follow(output: OutputSink): Promise<ExitStatus> {
    await followLogs(
      {
        http: this.#ctx.http,
        namespace: this.#ctx.namespace,
        pod: this.pod,
        container: CONTAINER,
        ended: () => this.#ended(),
        changed: async () => {
          const timer = AbortSignal.timeout(500);
          await this.#ctx.watch.waitFor(this.pod, () => this.#ended(), timer).catch(() => {});
        },
      },
      output,
      this.#abort.signal,
    );
    const final = await this.#ctx.watch.waitFor(
      this.pod,
      (p) => p === null || terminatedOf(p) !== undefined,
    );
    // A deleted pod's last state still says how its container ended.
    return exitStatusOf(terminatedOf(final ?? this.#ctx.watch.lastSeen(this.pod)));
  }

  /** Resolves with the exit status once the container ended and its output was delivered. */
  wait(): Promise<ExitStatus> {
    return this.#done;
  }

  /** Deletes the pod with a grace period of `graceMs` (SIGTERM, then SIGKILL); waits for it. */
  async stop(graceMs: number): Promise<void> {
    if (this.#ended()) return;
    await this.#delete(Math.ceil(Math.max(0, graceMs) / 1000));
    await this.#ctx.watch.waitFor(this.pod, (p) => p === null || terminatedOf(p) !== undefined);
  }

  async #delete(graceSeconds: number): Promise<void> {
    try {
      await this.#ctx.http.request(
        "DELETE",
        `/api/v1/namespaces/${this.#ctx.namespace}/pods/${this.pod}`,
        { query: { gracePeriodSeconds: graceSeconds }, body: { gracePeriodSeconds: graceSeconds } },
      ).then((res) => res.resume());
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
  }

  /**
   * Deletes the pod at once. Resolves when the API server accepted the deletion (the kubelet
   * finishes it in the background; `close()` waits until the run's pods are gone).
   */
  remove(): Promise<void> {
    this.#removed ??= (async () => {
      await this.#delete(0);
      this.#abort.abort();
      await this.#onRemoved();
    })();
    return this.#removed;
  }
}
