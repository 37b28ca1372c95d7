/**
 * `gc` access to a cluster: list the pods and claims the namespace owns (by label) and delete
 * one at a time. It never deletes an object without the namespace's label.
 *
 * @module
 */

import type { V1ObjectMeta } from "@kubernetes/client-node";
import { DriverError, type DriverMaintenance, type ResourceRecord } from "../contract.ts";
import type { KubeHttp } from "./http.ts";
import { readAll, statusOf } from "./http.ts";
import { ANNOTATION, LABEL, labelValue, selector } from "./names.ts";

/** Maintenance for one PocketCI namespace in one Kubernetes namespace. */
export class K8sMaintenance implements DriverMaintenance {
  readonly #http: KubeHttp;
  readonly #k8sNamespace: string;
  readonly #namespace: string;
  readonly #server: string;
  readonly #helperImage: string;

  /** Binds to a cluster and namespaces. */
  constructor(
    http: KubeHttp,
    server: string,
    k8sNamespace: string,
    namespace: string,
    helperImage = "busybox:latest",
  ) {
    this.#helperImage = helperImage;
    this.#http = http;
    this.#server = server;
    this.#k8sNamespace = k8sNamespace;
    this.#namespace = namespace;
  }

  #selector(): string {
    return selector({ [LABEL.managed]: "true", [LABEL.namespace]: labelValue(this.#namespace) });
  }

  /** Pods (as containers) and claims (volumes, caches) of the namespace, each with its run. */
  async listResources(): Promise<ResourceRecord[]> {
    const base = `/api/v1/namespaces/${this.#k8sNamespace}`;
    const query = { labelSelector: this.#selector() };
    const [pods, claims] = await Promise.all([
      this.#http.json<{ items: { metadata: V1ObjectMeta }[] }>("GET", `${base}/pods`, { query }),
      this.#http.json<{ items: { metadata: V1ObjectMeta }[] }>(
        "GET",
        `${base}/persistentvolumeclaims`,
        { query },
      ),
    ]);
    const record = (kind: ResourceRecord["kind"], meta: V1ObjectMeta): ResourceRecord => ({
      kind,
      id: meta.name!,
      driver: "k8s",
      runId: meta.labels?.[LABEL.run],
      namespace: meta.annotations?.[ANNOTATION.namespace] ?? this.#namespace,
      ...(meta.creationTimestamp
        ? { createdAt: new Date(meta.creationTimestamp).toISOString() }
        : {}),
      detail: {
        server: this.#server,
        k8sNamespace: this.#k8sNamespace,
        ...(meta.annotations?.[ANNOTATION.name] ? { name: meta.annotations[ANNOTATION.name] } : {}),
        ...(meta.annotations?.[ANNOTATION.key] ? { key: meta.annotations[ANNOTATION.key] } : {}),
      },
    });
    return [
      ...pods.items.map((p) => record("container", p.metadata)),
      ...claims.items.map((c) =>
        record(c.metadata.labels?.[LABEL.kind] === "cache" ? "cache" : "volume", c.metadata)
      ),
    ];
  }

  /**
   * The bytes of files in each cache, measured by one short-lived pod that mounts the claims
   * (read-only) and sums file sizes; caches it cannot measure are left out.
   */
  async cacheSizes(caches: readonly ResourceRecord[]): Promise<ReadonlyMap<string, number>> {
    const sizes = new Map<string, number>();
    if (caches.length === 0) return sizes;
    const base = `/api/v1/namespaces/${this.#k8sNamespace}/pods`;
    const name = `pci-gc-du-${crypto.randomUUID().slice(0, 8)}`;
    const script =
      'for d in /c/*; do printf "%s %s\\n" "${d#/c/}" "$(find "$d" -type f -exec stat -c %s {} + | awk \'{s+=$1} END {print s+0}\')"; done';
    await this.#http.json("POST", base, {
      body: {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name,
          labels: {
            [LABEL.managed]: "true",
            [LABEL.namespace]: labelValue(this.#namespace),
            [LABEL.kind]: "helper",
          },
        },
        spec: {
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          containers: [{
            name: "main",
            image: this.#helperImage,
            imagePullPolicy: "IfNotPresent",
            command: ["sh", "-c", script],
            volumeMounts: caches.map((_, i) => ({
              name: `c${i}`,
              mountPath: `/c/${i}`,
              readOnly: true,
            })),
          }],
          volumes: caches.map((c, i) => ({
            name: `c${i}`,
            persistentVolumeClaim: { claimName: c.id, readOnly: true },
          })),
        },
      },
    });
    try {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const pod = await this.#http.json<{ status?: { phase?: string } }>(
          "GET",
          `${base}/${name}`,
        );
        if (pod.status?.phase === "Succeeded") break;
        if (pod.status?.phase === "Failed" || Date.now() > deadline) return sizes;
        await new Promise((r) => setTimeout(r, 200));
      }
      const res = await this.#http.request("GET", `${base}/${name}/log`);
      const text = await readAll(res);
      for (const line of text.split("\n")) {
        const m = /^(\d+) (\d+)$/.exec(line.trim());
        if (m && caches[Number(m[1])]) sizes.set(caches[Number(m[1])].id, Number(m[2]));
      }
      return sizes;
    } finally {
      await this.#http.request("DELETE", `${base}/${name}`, { query: { gracePeriodSeconds: 0 } })
        .then((r) => r.resume()).catch(() => {});
    }
  }

  /** Deletes one pod or claim (only one carrying the namespace's label). */
  async removeResource(resource: ResourceRecord): Promise<void> {
    const plural = resource.kind === "container" ? "pods" : "persistentvolumeclaims";
    const path = `/api/v1/namespaces/${this.#k8sNamespace}/${plural}/${resource.id}`;
    let meta: V1ObjectMeta;
    try {
      meta = (await this.#http.json<{ metadata: V1ObjectMeta }>("GET", path)).metadata;
    } catch (error) {
      if (statusOf(error) === 404) return;
      throw new DriverError(
        "failed",
        `cannot read ${plural}/${resource.id}: ${(error as Error).message}`,
      );
    }
    if (meta.labels?.[LABEL.namespace] !== labelValue(this.#namespace)) {
      throw new DriverError(
        "invalid",
        `${plural}/${resource.id} does not belong to namespace ${this.#namespace}`,
      );
    }
    try {
      await this.#http.request("DELETE", path, { query: { gracePeriodSeconds: 0 } }).then((r) =>
        r.resume()
      );
    } catch (error) {
      if (statusOf(error) !== 404) {
        throw new DriverError(
          "failed",
          `cannot delete ${plural}/${resource.id}: ${(error as Error).message}`,
        );
      }
    }
  }
}
