/**
 * Volumes and caches as PersistentVolumeClaims (`storage_class`, `volume_size`), labelled like
 * every PocketCI object; a run's volumes are named by run, caches by namespace, name and key so
 * later runs find them. `putArchive`/`getArchive` go through a helper pod that mounts the claim
 * and `pods/exec` of `tar`, as `kubectl cp` does; entries escaping the volume are refused before
 * they reach the pod. A seeded cache is filled by a helper pod copying the seed claim.
 *
 * @module
 */

import { posix } from "node:path";
import type { V1PersistentVolumeClaim, V1Pod } from "@kubernetes/client-node";
import type { KubeConfig } from "@kubernetes/client-node";
import {
  type CacheEntry,
  DriverError,
  type ResourceRecord,
  type TaskSpec,
  type VolumeHandle,
  type VolumeSpec,
} from "../contract.ts";
import { generatorStream, renameEntries, tarEnd } from "../docker/tar.ts";
import { execInPod } from "./exec.ts";
import { statusOf } from "./http.ts";
import { ANNOTATION, LABEL, labelsFor, labelValue, objectName, selector } from "./names.ts";
import { podFor } from "./pod_spec.ts";
import { createAndStart, type PodContext } from "./task.ts";

/** Where helper pods mount the claim. */
const MOUNT = "/data";

/** The PVC settings of the driver. */
export interface ClaimOptions {
  /** `storageClassName`; absent: the cluster's default class. */
  readonly storageClass?: string;
  /** Requested size (`1Gi`). */
  readonly size: string;
  /** The image of helper pods (needs `sh`, `tar`, `cp`, `sleep`). */
  readonly helperImage: string;
}

/** A path inside a volume, normalized; one that escapes it is an `invalid` error. */
export function volumePath(path: string, volume: string): string {
  const normalized = posix.normalize(`/${path}`).replace(/\/+$/, "");
  if (normalized.split("/").includes("..")) {
    throw new DriverError("invalid", `path ${JSON.stringify(path)} escapes volume ${volume}`);
  }
  return normalized.replace(/^\/+/, "");
}

/** An archive entry name inside the volume (a leading `/` dropped); `..` is refused. */
export function entryName(name: string, volume: string): string {
  const parts = name.replace(/^\/+/, "").split("/");
  if (parts.includes("..")) {
    throw new DriverError(
      "invalid",
      `archive entry ${JSON.stringify(name)} escapes volume ${volume}`,
    );
  }
  return parts.join("/");
}

/** Everything the volume store needs from the driver. */
export interface VolumeContext extends PodContext {
  /** The kubeconfig (exec). */
  readonly kc: KubeConfig;
  /** The PocketCI namespace. */
  readonly pocketciNamespace: string;
  /** The run. */
  readonly runId: string;
  /** Records a resource for `gc`. */
  record(
    kind: "volume" | "cache" | "container",
    id: string,
    detail?: Record<string, string>,
  ): Promise<ResourceRecord>;
  /** Forgets a removed resource. */
  forget(kind: "volume" | "cache" | "container", id: string): Promise<void>;
}

/** The run's claims and their helper pods. */
export class ClaimStore {
  readonly #ctx: VolumeContext;
  readonly #options: ClaimOptions;
  readonly #helpers = new Map<string, Promise<string>>();
  readonly #caches = new Map<string, Promise<VolumeHandle>>();

  /** Binds to a run. */
  constructor(ctx: VolumeContext, options: ClaimOptions) {
    this.#ctx = ctx;
    this.#options = options;
  }

  #path(name?: string): string {
    return `/api/v1/namespaces/${this.#ctx.namespace}/persistentvolumeclaims${
      name ? `/${name}` : ""
    }`;
  }

  #claim(name: string, meta: ReturnType<typeof labelsFor>): V1PersistentVolumeClaim {
    return {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name, labels: meta.labels, annotations: meta.annotations },
      spec: {
        accessModes: ["ReadWriteOnce"],
        resources: { requests: { storage: this.#options.size } },
        ...(this.#options.storageClass ? { storageClassName: this.#options.storageClass } : {}),
      },
    };
  }

  /** Creates a run volume, or opens (creating, maybe from a seed) a cache. */
  create(spec: VolumeSpec): Promise<VolumeHandle> {
    if (spec.kind === "volume") return this.#createVolume(spec);
    const id = this.#cacheId(spec.name, spec.key);
    const known = this.#caches.get(id);
    // Opened before in this run: it exists now, whatever the first opening found.
    if (known) return known.then((h) => ({ ...h, opened: "existing" as const }));
    const opening = this.#openCache(spec, id);
    this.#caches.set(id, opening);
    opening.catch(() => this.#caches.delete(id));
    return opening.then((h) => ({ ...h }));
  }

  #cacheId(name: string, key: string | undefined): string {
    return objectName("pci-cache", name, `${this.#ctx.pocketciNamespace}\0${name}\0${key ?? ""}`);
  }

  async #createVolume(spec: VolumeSpec): Promise<VolumeHandle> {
    const id = objectName("pci-vol", spec.name, `${this.#ctx.runId}\0${spec.name}`);
    const meta = labelsFor(this.#ctx.pocketciNamespace, this.#ctx.runId, "volume", {
      name: spec.name,
    });
    await this.#ctx.record("volume", id, { name: spec.name });
    try {
      await this.#ctx.http.json("POST", this.#path(), { body: this.#claim(id, meta) });
    } catch (error) {
      if (statusOf(error) !== 409) throw this.#error(`cannot create volume ${spec.name}`, error);
    }
    return { name: spec.name, kind: "volume", id };
  }

  async #openCache(spec: VolumeSpec, id: string): Promise<VolumeHandle> {
    if (spec.seed && spec.seed.kind !== "cache") {
      throw new DriverError(
        "invalid",
        `cache ${spec.name} cannot be seeded from ${spec.seed.kind} ${spec.seed.name}: a seed must be a cache of the namespace`,
      );
    }
    const handle = {
      name: spec.name,
      kind: "cache" as const,
      id,
      ...(spec.key !== undefined ? { key: spec.key } : {}),
    };
    const meta = labelsFor(this.#ctx.pocketciNamespace, this.#ctx.runId, "cache", {
      name: spec.name,
      ...(spec.key !== undefined ? { key: spec.key } : {}),
    });
    await this.#ctx.record("cache", id, {
      name: spec.name,
      ...(spec.key ? { key: spec.key } : {}),
    });
    try {
      await this.#ctx.http.json("POST", this.#path(), { body: this.#claim(id, meta) });
    } catch (error) {
      if (statusOf(error) === 409) {
        // Existing: mark this run as its last user.
        await this.#ctx.http.json("PATCH", this.#path(id), {
          body: { metadata: { labels: { [LABEL.run]: labelValue(this.#ctx.runId) } } },
          contentType: "application/merge-patch+json",
        }).catch(() => {});
        return { ...handle, opened: "existing" };
      }
      throw this.#error(`cannot create cache ${spec.name}`, error);
    }
    if (spec.seed) {
      await this.#copy(spec.seed, handle);
      return { ...handle, opened: "seeded" };
    }
    return { ...handle, opened: "created" };
  }

  async #copy(from: VolumeHandle, to: VolumeHandle): Promise<void> {
    const name = objectName("pci-seed", to.name, `${this.#ctx.runId}\0${to.id}`);
    const spec = this.#helperSpec(name, [
      { volume: from, path: "/src" },
      { volume: to, path: MOUNT },
    ]);
    const pod = this.#helperPod(spec, name, ["sh", "-c", `cp -a /src/. ${MOUNT}/`]);
    await this.#ctx.record("container", name, { role: "seed" });
    try {
      await createAndStart(this.#ctx, pod, this.#options.helperImage);
      const done = await this.#ctx.watch.waitFor(
        name,
        (p) => p === null || !!p.status?.containerStatuses?.[0]?.state?.terminated,
      );
      const code = done?.status?.containerStatuses?.[0]?.state?.terminated?.exitCode;
      if (code !== 0) {
        throw new DriverError(
          "failed",
          `copying cache ${from.name} into ${to.name} failed (exit ${code})`,
        );
      }
    } finally {
      await this.#deletePod(name);
      await this.#ctx.forget("container", name);
    }
  }

  #helperSpec(name: string, mounts: TaskSpec["mounts"]): TaskSpec {
    return {
      id: name,
      name,
      image: this.#options.helperImage,
      command: [],
      env: {},
      mounts,
      pull: "missing",
    };
  }

  #helperPod(spec: TaskSpec, name: string, command: string[]): V1Pod {
    const meta = labelsFor(this.#ctx.pocketciNamespace, this.#ctx.runId, "helper", { name });
    return podFor(spec, {
      name,
      namespace: this.#ctx.namespace,
      labels: meta.labels,
      annotations: meta.annotations,
      command,
      readWriteOnce: true,
    });
  }

  async #deletePod(name: string): Promise<void> {
    await this.#ctx.http.request(
      "DELETE",
      `/api/v1/namespaces/${this.#ctx.namespace}/pods/${name}`,
      {
        query: { gracePeriodSeconds: 0 },
      },
    ).then((r) => r.resume()).catch(() => {});
    await this.#ctx.watch.waitFor(name, (p) => p === null, AbortSignal.timeout(60_000)).catch(
      () => {},
    );
    this.#ctx.watch.forget(name);
  }

  #helper(volume: VolumeHandle): Promise<string> {
    let helper = this.#helpers.get(volume.id);
    if (!helper) {
      helper = (async () => {
        const name = objectName("pci-helper", volume.name, `${this.#ctx.runId}\0${volume.id}`);
        const spec = this.#helperSpec(name, [{ volume, path: MOUNT }]);
        await this.#ctx.record("container", name, { role: "helper" });
        await createAndStart(
          this.#ctx,
          this.#helperPod(spec, name, ["sleep", "2147483647"]),
          this.#options.helperImage,
        );
        return name;
      })();
      this.#helpers.set(volume.id, helper);
      helper.catch(() => this.#helpers.delete(volume.id));
    }
    return helper;
  }

  /** Removes the helper pods of the given claims (all when omitted). */
  async removeHelpers(ids?: readonly string[]): Promise<void> {
    const targets = ids ?? [...this.#helpers.keys()];
    await Promise.all(targets.map(async (id) => {
      const helper = this.#helpers.get(id);
      if (!helper) return;
      this.#helpers.delete(id);
      const name = await helper.catch(() => undefined);
      if (!name) return;
      await this.#deletePod(name);
      await this.#ctx.forget("container", name);
    }));
  }

  /** Unpacks a tar stream into the volume at `path` (created when missing). */
  async putArchive(
    volume: VolumeHandle,
    tar: ReadableStream<Uint8Array>,
    path?: string,
  ): Promise<void> {
    const sub = volumePath(path ?? "", volume.name);
    let refused: unknown;
    async function* checked(): AsyncGenerator<Uint8Array> {
      try {
        yield* renameEntries(tar, (name) => entryName(name, volume.name) || null);
        yield tarEnd();
      } catch (error) {
        refused = error;
      }
    }
    const helper = await this.#helper(volume);
    const target = sub ? `${MOUNT}/${sub}` : MOUNT;
    const stderr: string[] = [];
    const code = await execInPod(this.#ctx.kc, this.#ctx.namespace, helper, [
      "sh",
      "-c",
      'mkdir -p "$1" && tar -x -f - -C "$1"',
      "sh",
      target,
    ], {
      stdin: generatorStream(checked()),
      output: (stream, chunk) => {
        if (stream === "stderr") stderr.push(new TextDecoder().decode(chunk));
      },
    });
    if (refused) {
      throw refused instanceof DriverError ? refused : new DriverError(
        "invalid",
        `cannot read the archive for volume ${volume.name}: ${(refused as Error).message}`,
      );
    }
    if (code !== 0) {
      throw new DriverError(
        "failed",
        `cannot write into volume ${volume.name}: tar exited ${code}: ${
          stderr.join("").trim().split("\n")[0]
        }`,
      );
    }
  }

  /** A tar of the whole volume, or of `paths` (relative to the volume's root). */
  async getArchive(
    volume: VolumeHandle,
    paths?: readonly string[],
  ): Promise<ReadableStream<Uint8Array>> {
    const wanted = paths === undefined || paths.length === 0
      ? ["."]
      : paths.map((p) => volumePath(p, volume.name) || ".");
    const helper = await this.#helper(volume);
    const missing = await execInPod(this.#ctx.kc, this.#ctx.namespace, helper, [
      "sh",
      "-c",
      'cd "$1" && shift && for p; do [ -e "$p" ] || { echo "$p"; exit 3; }; done',
      "sh",
      MOUNT,
      ...wanted,
    ], {
      output: () => {},
    });
    if (missing === 3) {
      throw new DriverError(
        "not_found",
        `a path of ${wanted.join(", ")} does not exist in volume ${volume.name}`,
      );
    }
    const { kc, namespace } = this.#ctx;
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const abort = new AbortController();
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
      cancel() {
        abort.abort();
      },
    });
    // The reader may cancel early: every controller call tolerates a closed stream.
    const safely = (action: () => void) => {
      try {
        action();
      } catch { /* cancelled */ }
    };
    const stderr: string[] = [];
    execInPod(kc, namespace, helper, ["tar", "-c", "-f", "-", "-C", MOUNT, ...wanted], {
      output: (s, chunk) => {
        if (s === "stdout") safely(() => controller.enqueue(chunk.slice()));
        else stderr.push(new TextDecoder().decode(chunk));
      },
      signal: abort.signal,
    }).then((code) => {
      if (code === 0) safely(() => controller.close());
      else {
        safely(() =>
          controller.error(
            new DriverError(
              "failed",
              `cannot read volume ${volume.name}: tar exited ${code}: ${stderr.join("").trim()}`,
            ),
          )
        );
      }
    }, (error) => safely(() => controller.error(error)));
    return stream;
  }

  /** Every cache of the namespace with this logical name. */
  async list(name: string): Promise<CacheEntry[]> {
    const list = await this.#ctx.http.json<{ items: V1PersistentVolumeClaim[] }>(
      "GET",
      this.#path(),
      {
        query: {
          labelSelector: selector({
            [LABEL.managed]: "true",
            [LABEL.namespace]: labelValue(this.#ctx.pocketciNamespace),
            [LABEL.kind]: "cache",
            [LABEL.name]: labelValue(name),
          }),
        },
      },
    );
    return list.items
      .filter((c) =>
        !c.metadata?.deletionTimestamp && c.metadata?.annotations?.[ANNOTATION.name] === name
      )
      .map((c) => {
        const key = c.metadata?.annotations?.[ANNOTATION.key];
        return {
          handle: {
            name,
            kind: "cache" as const,
            id: c.metadata!.name!,
            ...(key !== undefined ? { key } : {}),
          },
          ...(c.metadata?.creationTimestamp
            ? { lastUsedAt: new Date(c.metadata.creationTimestamp).toISOString() }
            : {}),
        };
      });
  }

  /** Deletes a run volume's claim (and its helper pod) and waits until it is gone; a cache stays (only `gc` removes caches). */
  async remove(volume: VolumeHandle): Promise<void> {
    await this.removeHelpers([volume.id]);
    if (volume.kind === "cache") return;
    await deleteClaim(this.#ctx, volume.id);
    await this.#ctx.forget(volume.kind, volume.id);
  }

  #error(what: string, error: unknown): DriverError {
    return new DriverError("failed", `${what}: ${(error as Error).message}`, { cause: error });
  }
}

/** Deletes a claim and waits (up to a minute) until it is gone (pvc-protection may hold it). */
export async function deleteClaim(ctx: PodContext, id: string): Promise<void> {
  const path = `/api/v1/namespaces/${ctx.namespace}/persistentvolumeclaims/${id}`;
  try {
    await ctx.http.request("DELETE", path).then((r) => r.resume());
  } catch (error) {
    if (statusOf(error) === 404) return;
    throw error;
  }
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      await ctx.http.json("GET", path);
    } catch (error) {
      if (statusOf(error) === 404) return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new DriverError(
    "failed",
    `volume claim ${id} is still terminating after 60 s (a pod still uses it?)`,
  );
}
