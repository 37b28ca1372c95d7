/**
 * Services on k8s: a pod running the image's own ENTRYPOINT and CMD (or the spec's), followed like
 * a task's; readiness probes reach it through `pods/portforward` (TCP, HTTP) and `pods/exec`.
 *
 * Tasks reach a service by its name through `hostAliases` (the service's name → its pod IP) in
 * every pod the run starts after it: the name is the run's own, so two runs sharing a Kubernetes
 * namespace may both have a service called `db` (a Service object named `db` would be shared by
 * every run of the namespace, and the second run's creation would fail).
 *
 * @module
 */

import type { KubeConfig } from "@kubernetes/client-node";
import type { ExitStatus, ProbeConnection, ServiceHandle } from "../contract.ts";
import { execInPod } from "./exec.ts";
import { portForward } from "./port_forward.ts";
import type { K8sTask } from "./task.ts";

/** A started service pod. */
export class K8sService implements ServiceHandle {
  /** The service's run-scoped ID. */
  readonly id: string;
  /** The pod's IP (what tasks' `hostAliases` map the service's name to). */
  readonly ip: string;
  readonly #task: K8sTask;
  readonly #kc: KubeConfig;
  readonly #namespace: string;
  readonly #onStopped: () => void;
  #stopping: Promise<void> | undefined;

  /** Wraps the service's pod, followed as a task; `onStopped` drops its name from new pods. */
  constructor(
    id: string,
    ip: string,
    task: K8sTask,
    kc: KubeConfig,
    namespace: string,
    onStopped: () => void,
  ) {
    this.id = id;
    this.ip = ip;
    this.#task = task;
    this.#kc = kc;
    this.#namespace = namespace;
    this.#onStopped = onStopped;
    void task.wait().then(onStopped, onStopped);
  }

  /** Resolves when the pod's container ended. */
  wait(): Promise<ExitStatus> {
    return this.#task.wait();
  }

  /** Deletes the pod with a grace period (SIGTERM, then SIGKILL), waiting until it is gone. */
  stop(graceMs: number): Promise<void> {
    this.#onStopped();
    this.#stopping ??= (async () => {
      await this.#task.stop(graceMs);
      await this.#task.remove();
    })();
    return this.#stopping;
  }

  /** Services on k8s publish no port on this host. */
  hostPort(_port: number): number | undefined {
    return undefined;
  }

  /** A connection to the pod's own port, through the API server's port forwarding. */
  dial(port: number, signal: AbortSignal): Promise<ProbeConnection> {
    return portForward(this.#kc, this.#namespace, this.#task.pod, port, signal);
  }

  /** Runs a probe command in the pod. */
  async exec(command: readonly string[], signal: AbortSignal): Promise<ExitStatus> {
    signal.throwIfAborted();
    const code = await execInPod(this.#kc, this.#namespace, this.#task.pod, command, { signal });
    return { code };
  }
}
