/**
 * One watch on the run's pods (label selector on the run), kept up across dropped connections
 * (resumed from the last resourceVersion, re-listed after `410 Gone`), with the latest state of
 * each pod and waiters for a pod to reach a state.
 *
 * @module
 */

import type { V1Pod } from "@kubernetes/client-node";
import { type KubeHttp, statusOf } from "./http.ts";

interface Waiter {
  readonly name: string;
  readonly check: (pod: V1Pod | null) => boolean;
  readonly resolve: (pod: V1Pod | null) => void;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Pods of one label selector in one namespace, followed live. */
export class PodWatch {
  readonly #http: KubeHttp;
  readonly #namespace: string;
  readonly #selector: string;
  readonly #latest = new Map<string, V1Pod | null>();
  readonly #lastSeen = new Map<string, V1Pod>();
  readonly #waiters = new Set<Waiter>();
  readonly #abort = new AbortController();
  #rv = "";
  #loop?: Promise<void>;
  #ready?: Promise<void>;

  /** Watches the pods matching `selector` in `namespace`. */
  constructor(http: KubeHttp, namespace: string, selector: string) {
    this.#http = http;
    this.#namespace = namespace;
    this.#selector = selector;
  }

  /** Lists the pods and starts watching; resolves once the first list is in. */
  start(): Promise<void> {
    this.#ready ??= this.#list().then(() => {
      this.#loop = this.#watchLoop();
    });
    return this.#ready;
  }

  async #list(): Promise<void> {
    const list = await this.#http.json<{ metadata: { resourceVersion: string }; items: V1Pod[] }>(
      "GET",
      `/api/v1/namespaces/${this.#namespace}/pods`,
      { query: { labelSelector: this.#selector }, signal: this.#abort.signal },
    );
    this.#rv = list.metadata.resourceVersion;
    for (const pod of list.items) {
      this.#lastSeen.set(pod.metadata!.name!, pod);
      this.#set(pod.metadata!.name!, pod);
    }
  }

  #set(name: string, pod: V1Pod | null): void {
    // A pod deleted and created again under the same name: the new one counts.
    this.#latest.set(name, pod);
    for (const w of this.#waiters) {
      if (w.name === name && w.check(pod)) {
        this.#waiters.delete(w);
        w.resolve(pod);
      }
    }
  }

  async #watchLoop(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      try {
        const res = await this.#http.request("GET", `/api/v1/namespaces/${this.#namespace}/pods`, {
          query: {
            watch: "true",
            labelSelector: this.#selector,
            resourceVersion: this.#rv,
            allowWatchBookmarks: "true",
            timeoutSeconds: 300,
          },
          signal: this.#abort.signal,
        });
        let buf = "";
        const decoder = new TextDecoder();
        for await (const chunk of res) {
          buf += decoder.decode(chunk as Uint8Array, { stream: true });
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            const event = JSON.parse(line) as { type: string; object: V1Pod };
            if (event.type === "ERROR") {
              const code = (event.object as { code?: number }).code;
              if (code === 410) {
                this.#rv = "";
                await this.#list();
              }
              continue;
            }
            const rv = event.object.metadata?.resourceVersion;
            if (rv) this.#rv = rv;
            if (event.type === "BOOKMARK") continue;
            const name = event.object.metadata!.name!;
            this.#lastSeen.set(name, event.object);
            this.#set(name, event.type === "DELETED" ? null : event.object);
          }
        }
      } catch (error) {
        if (this.#abort.signal.aborted) return;
        if (statusOf(error) === 410) {
          this.#rv = "";
          await this.#list().catch(() => {});
        }
        await delay(200);
      }
    }
  }

  /** The latest state of a pod (`null` once deleted, `undefined` when never seen). */
  latest(name: string): V1Pod | null | undefined {
    return this.#latest.get(name);
  }

  /** The last state seen of a pod, also after it was deleted (its final status). */
  lastSeen(name: string): V1Pod | undefined {
    return this.#lastSeen.get(name);
  }

  /** Records a pod this client just created or read (the watch may lag behind). */
  observe(pod: V1Pod): void {
    const name = pod.metadata!.name!;
    const known = this.#latest.get(name);
    const rv = (p: V1Pod | null | undefined) => Number(p?.metadata?.resourceVersion ?? 0);
    if (!known || rv(pod) > rv(known)) {
      this.#lastSeen.set(name, pod);
      this.#set(name, pod);
    }
  }

  /** Resolves with the pod once `check` holds for it (checked now and on every change). */
  waitFor(
    name: string,
    check: (pod: V1Pod | null) => boolean,
    signal?: AbortSignal,
  ): Promise<V1Pod | null> {
    if (this.#latest.has(name)) {
      const now = this.#latest.get(name)!;
      if (check(now)) return Promise.resolve(now);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { name, check, resolve };
      this.#waiters.add(waiter);
      signal?.addEventListener("abort", () => {
        this.#waiters.delete(waiter);
        reject(signal.reason);
      }, { once: true });
    });
  }

  /** Forgets a pod that is gone. */
  forget(name: string): void {
    this.#latest.delete(name);
    this.#lastSeen.delete(name);
  }

  /** Stops watching. */
  async close(): Promise<void> {
    this.#abort.abort();
    await this.#loop?.catch(() => {});
  }
}
