/**
 * `GET /api/v1/namespaces/{ns}/pods/{name}/log` as the kubelet serves it: stdout and stderr
 * merged in order, `timestamps` (RFC 3339 with nanoseconds, then a space), `sinceTime`,
 * `sinceSeconds`, `tailLines`, `limitBytes`, `follow` (ends when the container exits), `400`
 * while the container is waiting. Open streams can be cut on purpose to test reconnection.
 *
 * @module
 */

import type { ServerResponse } from "node:http";
import { type DockerApi, readMux } from "./docker_api.ts";
import type { PodRuntime } from "./pods.ts";
import { type KubeObject, StatusError, type Store } from "./store.ts";

/** Serves pod logs and keeps track of the open follow streams. */
export class LogServer {
  readonly #docker: DockerApi;
  readonly #store: Store;
  readonly #pods: PodRuntime;
  readonly #open = new Map<ServerResponse, AbortController>();

  /** Creates the server. */
  constructor(docker: DockerApi, store: Store, pods: PodRuntime) {
    this.#docker = docker;
    this.#store = store;
    this.#pods = pods;
  }

  /** How many log streams are open now. */
  get openStreams(): number {
    return this.#open.size;
  }

  /** Cuts every open log connection (the client sees the stream end early). */
  dropAll(): number {
    const n = this.#open.size;
    for (const [res, abort] of this.#open) {
      res.socket?.destroy();
      abort.abort();
    }
    this.#open.clear();
    return n;
  }

  /** Checks the pod and container and returns the docker container ID (or throws a Status). */
  #container(ns: string, name: string, query: URLSearchParams): string {
    const pod: KubeObject = this.#store.must("pods", ns, name);
    const c = pod.spec.containers[0];
    const wanted = query.get("container");
    if (wanted && wanted !== c.name) {
      throw new StatusError(
        400,
        "BadRequest",
        `container ${wanted} is not valid for pod ${name}`,
      );
    }
    const id = this.#pods.containerOf(ns, name);
    const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
    if (!id || (waiting && !pod.status.containerStatuses[0].lastState?.terminated)) {
      const reason = waiting?.reason ?? "ContainerCreating";
      const why = reason === "ErrImagePull" || reason === "ImagePullBackOff"
        ? "trying and failing to pull image"
        : reason;
      throw new StatusError(
        400,
        "BadRequest",
        `container "${c.name}" in pod "${name}" is waiting to start: ${why}`,
      );
    }
    return id;
  }

  /** Answers one log request. */
  async serve(
    ns: string,
    name: string,
    query: URLSearchParams,
    res: ServerResponse,
  ): Promise<void> {
    const id = this.#container(ns, name, query);
    const follow = query.get("follow") === "true";
    const timestamps = query.get("timestamps") === "true";
    const params = new URLSearchParams({ stdout: "1", stderr: "1", timestamps: "1" });
    if (follow) params.set("follow", "1");
    const sinceTime = query.get("sinceTime");
    const sinceSeconds = query.get("sinceSeconds");
    let since: number | undefined;
    if (sinceTime) {
      since = Date.parse(sinceTime);
      if (Number.isNaN(since)) {
        throw new StatusError(400, "BadRequest", `invalid sinceTime "${sinceTime}"`);
      }
    } else if (sinceSeconds) since = Date.now() - Number(sinceSeconds) * 1000;
    if (since !== undefined) params.set("since", (since / 1000).toFixed(3));
    const tail = query.get("tailLines");
    if (tail) params.set("tail", tail);
    let limit = query.get("limitBytes") ? Number(query.get("limitBytes")) : Infinity;
    const abort = new AbortController();
    const upstream = await this.#docker.request(
      "GET",
      `/containers/${id}/logs?${params}`,
      undefined,
      abort.signal,
    );
    res.writeHead(200, { "Content-Type": "text/plain", "Transfer-Encoding": "chunked" });
    if (follow) this.#open.set(res, abort);
    let closed = false;
    res.on("close", () => {
      closed = true;
      this.#open.delete(res);
      abort.abort();
    });
    let wake = () => {};
    abort.signal.addEventListener("abort", () => wake(), { once: true });
    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    try {
      for await (const frame of readMux(upstream.body!)) {
        if (closed || abort.signal.aborted) break;
        // Each docker log frame is one line: "<timestamp> <text>".
        const text = decoder.decode(frame.data);
        const space = text.indexOf(" ");
        const stamp = text.slice(0, space);
        if (since !== undefined && Date.parse(stamp) < since) continue;
        const body = text.slice(space + 1);
        let out = timestamps
          ? encoder.encode(`${stamp.replace(/(\.\d*?)0+Z$/, "$1Z").replace(/\.Z$/, "Z")} ${body}`)
          : encoder.encode(body);
        if (out.length > limit) out = out.slice(0, limit);
        limit -= out.length;
        if (out.length) {
          // A destroyed socket may never call back: the abort ends the wait too.
          await new Promise<void>((resolve) => {
            wake = resolve;
            res.write(out, () => resolve());
          });
        }
        if (abort.signal.aborted) break;
        if (limit <= 0) break;
      }
    } catch {
      // The client went away or docker ended the stream.
    }
    this.#open.delete(res);
    if (!closed) res.end();
  }
}
