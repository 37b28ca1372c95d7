/**
 * The k8s driver bound to one run: tasks and sandboxes as bare pods in the configured
 * Kubernetes namespace, volumes and caches as claims, one watch on the run's pods, cleanup by
 * the run's label on close.
 *
 * @module
 */

import type { V1Pod } from "@kubernetes/client-node";
import {
  type CacheEntry,
  type CleanupReport,
  type Driver,
  type DriverContext,
  DriverError,
  noHostPorts,
  type OutputSink,
  type ResourceKind,
  type ResourceRecord,
  type SandboxHandle,
  type ServiceHandle,
  type ServiceSpec,
  type TaskHandle,
  type TaskSpec,
  UnsupportedError,
  type VolumeHandle,
  type VolumeSpec,
} from "../contract.ts";
import { imageReferenceError } from "../../runner/image_ref.ts";
import { K8S_CAPABILITIES } from "./capabilities.ts";
import type { KubeTarget } from "./config.ts";
import { attachStdin } from "./exec.ts";
import { KubeHttp, statusOf } from "./http.ts";
import { LABEL, labelsFor, labelValue, objectName, selector } from "./names.ts";
import { podFor } from "./pod_spec.ts";
import { PodWatch } from "./pod_watch.ts";
import { K8sSandbox } from "./sandbox.ts";
import { K8sService } from "./service.ts";
import { createAndStart, K8sTask, type PodContext } from "./task.ts";
import { type ClaimOptions, ClaimStore, deleteClaim } from "./volumes.ts";

/** The keep-alive of a sandbox without a command of its own. */
/** Seconds past a task's timeout before the kubelet's `activeDeadlineSeconds` kills its pod. */
export const DEADLINE_MARGIN_S = 60;

export const SANDBOX_KEEPALIVE: readonly string[] = [
  "sh",
  "-c",
  "trap 'exit 0' TERM; while true; do sleep 3600 & wait $!; done",
];

/**
 * A privileged pod the cluster refused (PodSecurity admission, or a node that cannot grant every
 * capability) is an {@link UnsupportedError} for `privileged`, not a task failure.
 */
export function refusedPrivilege(spec: TaskSpec, error: unknown): unknown {
  if (!spec.privileged) return error;
  const message = (error as Error).message ?? "";
  if (/privileged|apply caps|PodSecurity|forbidden/i.test(message)) {
    return new UnsupportedError(
      "k8s",
      "privileged",
      `the cluster refused a privileged pod: ${message}`,
    );
  }
  return error;
}

/** Settings of one driver instance (from the DSN). */
export interface K8sOptions {
  /** The Kubernetes namespace. */
  readonly namespace: string;
  /** Create the namespace when it does not exist. */
  readonly createNamespace: boolean;
  /** How long a pod may stay Pending. */
  readonly startTimeoutMs: number;
  /** Claim settings. */
  readonly claims: ClaimOptions;
}

/** Checks the namespace exists (or creates it); a missing one is an error naming it. */
export async function ensureNamespace(
  http: KubeHttp,
  target: KubeTarget,
  namespace: string,
  create: boolean,
): Promise<void> {
  try {
    await http.json("GET", `/api/v1/namespaces/${namespace}`);
    return;
  } catch (error) {
    const status = statusOf(error);
    if (status === 403) return; // A Role limited to the namespace cannot read it: go on.
    if (status !== 404) {
      throw new DriverError(
        "unavailable",
        `the Kubernetes API at ${target.server} (from ${target.source}) failed: ${
          (error as Error).message
        }`,
      );
    }
  }
  if (!create) {
    throw new DriverError(
      "not_found",
      `Kubernetes namespace "${namespace}" does not exist at ${target.server}; create it (kubectl create namespace ${namespace}) or pass create_namespace=true`,
    );
  }
  await http.json("POST", "/api/v1/namespaces", {
    body: { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } },
  }).catch((error) => {
    if (statusOf(error) !== 409) {
      throw new DriverError(
        "failed",
        `cannot create namespace ${namespace}: ${(error as Error).message}`,
      );
    }
  });
}

/** Tasks, sandboxes and claims of one run on one cluster. */
export class K8sDriver implements Driver {
  /** Always `k8s`. */
  readonly name = "k8s" as const;
  /** What the driver honours. */
  readonly capabilities = K8S_CAPABILITIES;
  readonly #target: KubeTarget;
  readonly #http: KubeHttp;
  readonly #watch: PodWatch;
  readonly #context: DriverContext;
  readonly #options: K8sOptions;
  readonly #claims: ClaimStore;
  readonly #records = new Map<string, ResourceRecord>();
  readonly #tasks = new Map<string, string>();
  /** The run's running services: name → pod IP (every later pod resolves the name). */
  readonly #services = new Map<string, string>();
  readonly #pending = new Set<Promise<unknown>>();
  #closed?: Promise<CleanupReport>;

  /** Use {@link openK8sDriver}. */
  constructor(
    target: KubeTarget,
    http: KubeHttp,
    watch: PodWatch,
    context: DriverContext,
    options: K8sOptions,
  ) {
    this.#target = target;
    this.#http = http;
    this.#watch = watch;
    this.#context = context;
    this.#options = options;
    this.#claims = new ClaimStore({
      ...this.#podContext(),
      kc: target.kc,
      pocketciNamespace: context.namespace,
      runId: context.runId,
      record: (kind, id, detail) => this.#record(kind, id, detail),
      forget: (kind, id) => this.#forget(kind, id),
    }, options.claims);
  }

  #podContext(): PodContext {
    return {
      http: this.#http,
      watch: this.#watch,
      namespace: this.#options.namespace,
      startTimeoutMs: this.#options.startTimeoutMs,
    };
  }

  async #record(
    kind: ResourceKind,
    id: string,
    detail: Record<string, string> = {},
  ): Promise<ResourceRecord> {
    const record: ResourceRecord = {
      kind,
      id,
      driver: "k8s",
      runId: this.#context.runId,
      namespace: this.#context.namespace,
      createdAt: new Date().toISOString(),
      detail: { server: this.#target.server, k8sNamespace: this.#options.namespace, ...detail },
    };
    this.#records.set(`${kind}:${id}`, record);
    await this.#context.record(record);
    return record;
  }

  async #forget(kind: ResourceKind, id: string): Promise<void> {
    const record = this.#records.get(`${kind}:${id}`);
    if (!record) return;
    this.#records.delete(`${kind}:${id}`);
    await this.#context.forget(record);
  }

  #assertOpen(): void {
    if (this.#closed) throw new DriverError("failed", "the k8s driver was closed");
  }

  /** Runs `start` unless the driver was closed; always a promise (a rejected one when closed). */
  #guard<T>(start: () => Promise<T>): Promise<T> {
    try {
      this.#assertOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#track(start());
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#pending.add(p);
    p.finally(() => this.#pending.delete(p)).catch(() => {});
    return p;
  }

  #validate(spec: TaskSpec, what: "task" | "sandbox" | "service"): string {
    if (!spec.image) {
      throw new DriverError(
        "invalid",
        `${what} ${spec.name} has no image; the k8s driver runs every ${what} in a pod: set .image("...")`,
      );
    }
    const invalid = imageReferenceError(spec.image);
    if (invalid !== undefined) throw new DriverError("invalid", `${what} ${spec.name}: ${invalid}`);
    if (what === "task" && spec.command.length === 0) {
      throw new DriverError("invalid", `task ${spec.name} has no command`);
    }
    return spec.image;
  }

  #pod(
    spec: TaskSpec,
    kind: "task" | "sandbox" | "service",
    command?: readonly string[],
  ): V1Pod {
    const name = objectName(
      `pci-${kind === "task" ? "t" : kind === "sandbox" ? "s" : "v"}`,
      spec.name,
      `${this.#context.runId}\0${spec.id}`,
    );
    const meta = labelsFor(this.#context.namespace, this.#context.runId, kind, {
      task: spec.id,
      name: spec.name,
    });
    return podFor(spec, {
      name,
      namespace: this.#options.namespace,
      labels: meta.labels,
      annotations: meta.annotations,
      ...(command ? { command } : {}),
      readWriteOnce: true,
      services: new Map(this.#services),
      service: kind === "service",
      // A safety net for a runner that died: its own stop (after the grace) comes first.
      ...(kind === "task" && spec.timeoutMs !== undefined
        ? { deadlineSeconds: Math.ceil(spec.timeoutMs / 1000) + DEADLINE_MARGIN_S }
        : {}),
    });
  }

  /** Starts a task pod; resolves once its container started. */
  startTask(spec: TaskSpec, output: OutputSink): Promise<TaskHandle> {
    return this.#guard(() => this.#startTask(spec, output));
  }

  async #startTask(spec: TaskSpec, output: OutputSink): Promise<TaskHandle> {
    const image = this.#validate(spec, "task");
    const pod = this.#pod(spec, "task");
    const name = pod.metadata!.name!;
    await this.#record("container", name, { task: spec.id, role: "task" });
    this.#tasks.set(spec.id, name);
    try {
      await createAndStart(this.#podContext(), pod, image);
    } catch (error) {
      await this.#removePod(name).catch(() => {});
      throw refusedPrivilege(spec, error);
    }
    if (spec.stdin !== undefined) {
      // Fire and forget: the attach ends with the container; a task that exited already did
      // not want its input.
      void attachStdin(this.#target.kc, this.#options.namespace, name, spec.stdin).catch(() => {});
    }
    return new K8sTask(
      spec.id,
      name,
      this.#podContext(),
      output,
      () => this.#removed(name),
    );
  }

  /**
   * A task pod whose deletion the API server accepted: it can no longer be attached to, and
   * `close()` still waits until it is gone (then forgets its record).
   */
  #removed(name: string): Promise<void> {
    for (const [id, pod] of this.#tasks) if (pod === name) this.#tasks.delete(id);
    return Promise.resolve();
  }

  async #removePod(name: string): Promise<void> {
    await this.#http.request(
      "DELETE",
      `/api/v1/namespaces/${this.#options.namespace}/pods/${name}`,
      {
        query: { gracePeriodSeconds: 0 },
      },
    ).then((r) => r.resume()).catch((error) => {
      if (statusOf(error) !== 404) throw error;
    });
    await this.#watch.waitFor(name, (p) => p === null, AbortSignal.timeout(60_000)).catch(() => {});
    this.#watch.forget(name);
    await this.#forget("container", name);
  }

  /** Follows a task of this run again from the start of its output. */
  attachTask(id: string, output: OutputSink): Promise<TaskHandle | undefined> {
    return this.#guard(() => {
      const name = this.#tasks.get(id);
      if (!name || !this.#watch.latest(name)) return Promise.resolve(undefined);
      return Promise.resolve(
        new K8sTask(id, name, this.#podContext(), output, () => this.#removed(name)),
      );
    });
  }

  /** Creates a volume claim, or opens a cache's. */
  createVolume(spec: VolumeSpec): Promise<VolumeHandle> {
    return this.#guard(() => this.#claims.create(spec));
  }

  /** Every cache of the namespace named `name`. */
  listCaches(name: string): Promise<CacheEntry[]> {
    return this.#guard(() => this.#claims.list(name));
  }

  /** Deletes a run volume's claim. */
  removeVolume(volume: VolumeHandle): Promise<void> {
    return this.#guard(() => this.#claims.remove(volume));
  }

  /** Unpacks a tar into a volume. */
  putArchive(volume: VolumeHandle, tar: ReadableStream<Uint8Array>, path?: string): Promise<void> {
    return this.#guard(() => this.#claims.putArchive(volume, tar, path));
  }

  /** A tar of a volume or some of its paths. */
  getArchive(volume: VolumeHandle, paths?: readonly string[]): Promise<ReadableStream<Uint8Array>> {
    return this.#guard(() => this.#claims.getArchive(volume, paths));
  }

  /** Starts a sandbox pod. */
  startSandbox(spec: TaskSpec): Promise<SandboxHandle> {
    return this.#guard(() => this.#startSandbox(spec));
  }

  async #startSandbox(spec: TaskSpec): Promise<SandboxHandle> {
    const image = this.#validate(spec, "sandbox");
    const pod = this.#pod(
      { ...spec, stdin: undefined },
      "sandbox",
      spec.command.length ? spec.command : SANDBOX_KEEPALIVE,
    );
    const name = pod.metadata!.name!;
    await this.#record("container", name, { task: spec.id, role: "sandbox" });
    try {
      await createAndStart(this.#podContext(), pod, image);
    } catch (error) {
      await this.#removePod(name).catch(() => {});
      throw refusedPrivilege(spec, error);
    }
    return new K8sSandbox(
      spec.id,
      name,
      this.#target.kc,
      this.#options.namespace,
      spec.user,
      () => this.#removePod(name),
    );
  }

  /** Starts a service pod; resolves once its container started. */
  startService(spec: ServiceSpec, output: OutputSink): Promise<ServiceHandle> {
    return this.#guard(() => this.#startService(spec, output));
  }

  async #startService(spec: ServiceSpec, output: OutputSink): Promise<ServiceHandle> {
    if (spec.ports.length > 0) throw noHostPorts("k8s", spec);
    if (this.#services.has(spec.name)) {
      throw new DriverError("invalid", `a service named ${spec.name} is already running`);
    }
    const asTask: TaskSpec = { ...spec, command: spec.command ?? [] };
    const image = this.#validate(asTask, "service");
    const pod = this.#pod(asTask, "service");
    const name = pod.metadata!.name!;
    await this.#record("container", name, { task: spec.id, role: "service" });
    let started: V1Pod;
    try {
      started = await createAndStart(this.#podContext(), pod, image);
    } catch (error) {
      await this.#removePod(name).catch(() => {});
      throw refusedPrivilege(asTask, error);
    }
    const ip = started.status?.podIP ?? this.#watch.latest(name)?.status?.podIP ?? "";
    if (ip !== "") this.#services.set(spec.name, ip);
    const task = new K8sTask(
      spec.id,
      name,
      this.#podContext(),
      output,
      () => this.#removePod(name),
    );
    return new K8sService(spec.id, ip, task, this.#target.kc, this.#options.namespace, () => {
      if (this.#services.get(spec.name) === ip) this.#services.delete(spec.name);
    });
  }

  /** Deletes the run's pods and volume claims (caches stay); reports what it removed. */
  close(): Promise<CleanupReport> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<CleanupReport> {
    const removed: ResourceRecord[] = [];
    const failed: { resource: ResourceRecord; reason: string }[] = [];
    const ns = this.#options.namespace;
    const runSelector = selector({
      [LABEL.managed]: "true",
      [LABEL.namespace]: labelValue(this.#context.namespace),
      [LABEL.run]: labelValue(this.#context.runId),
    });
    try {
      await this.#http.request("DELETE", `/api/v1/namespaces/${ns}/pods`, {
        query: { labelSelector: runSelector, gracePeriodSeconds: 0 },
        body: { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0 },
      }).then((r) => r.resume());
    } catch (error) {
      for (const record of this.#records.values()) {
        if (record.kind === "container") {
          failed.push({ resource: record, reason: (error as Error).message });
        }
      }
    }
    await Promise.allSettled([...this.#pending]);
    const pods = [...this.#records.values()].filter((r) => r.kind === "container");
    await Promise.all(pods.map(async (record) => {
      const gone = await this.#watch.waitFor(
        record.id,
        (p) => p === null,
        AbortSignal.timeout(30_000),
      )
        .then(() => true, () => this.#watch.latest(record.id) === undefined);
      if (gone) {
        removed.push(record);
        await this.#forget("container", record.id);
      } else if (!failed.some((f) => f.resource === record)) {
        failed.push({
          resource: record,
          reason: "the pod was still there 30 s after its deletion",
        });
      }
    }));
    const volumes = [...this.#records.values()].filter((r) => r.kind === "volume");
    await Promise.all(volumes.map(async (record) => {
      try {
        await deleteClaim(this.#podContext(), record.id);
        removed.push(record);
        await this.#forget("volume", record.id);
      } catch (error) {
        failed.push({ resource: record, reason: (error as Error).message });
      }
    }));
    await this.#watch.close();
    await this.#http.close();
    return { removed, failed };
  }
}

/** Connects (checking the namespace) and starts the run's pod watch. */
export async function openK8sDriver(
  target: KubeTarget,
  context: DriverContext,
  options: K8sOptions,
): Promise<K8sDriver> {
  const http = new KubeHttp(target.kc, target.server);
  try {
    await ensureNamespace(http, target, options.namespace, options.createNamespace);
    const watch = new PodWatch(
      http,
      options.namespace,
      selector({
        [LABEL.managed]: "true",
        [LABEL.namespace]: labelValue(context.namespace),
        [LABEL.run]: labelValue(context.runId),
      }),
    );
    await watch.start();
    return new K8sDriver(target, http, watch, context, options);
  } catch (error) {
    await http.close();
    if (error instanceof DriverError) throw error;
    throw new DriverError(
      "unavailable",
      `cannot use the Kubernetes API at ${target.server} (from ${target.source}): ${
        (error as Error).message
      }`,
    );
  }
}
