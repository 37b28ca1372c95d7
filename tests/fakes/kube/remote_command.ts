/**
 * `pods/exec` and `pods/attach` over WebSocket with the Kubernetes channel protocols
 * `v5.channel.k8s.io` and `v4.channel.k8s.io`: every binary message starts with a channel byte
 * (0 stdin, 1 stdout, 2 stderr, 3 error/status JSON, 4 resize); v5 adds 255 + channel to close
 * a stream (stdin EOF). The command runs with `docker exec` (attach: `docker attach`); the
 * status channel carries `Success` or `NonZeroExitCode` with the code, as the kubelet sends it.
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { acceptWebSocket, rejectUpgrade } from "./websocket.ts";
import type { PodRuntime } from "./pods.ts";
import { type KubeObject, StatusError, type Store } from "./store.ts";

/** The subprotocols served, best first. */
export const CHANNEL_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"] as const;

function statusFrame(status: KubeObject): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(status));
  const out = new Uint8Array(json.length + 1);
  out[0] = 3;
  out.set(json, 1);
  return out;
}

function exitStatus(code: number, command: readonly string[]): KubeObject {
  if (code === 0) return { metadata: {}, status: "Success" };
  return {
    metadata: {},
    status: "Failure",
    message: `command terminated with non-zero exit code: error executing command [${
      command.join(" ")
    }], exit code ${code}`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(code) }] },
  };
}

/** Serves exec and attach upgrades. */
export class RemoteCommands {
  readonly #store: Store;
  readonly #pods: PodRuntime;
  readonly #children = new Set<Deno.ChildProcess>();

  /** Creates the handler. */
  constructor(store: Store, pods: PodRuntime) {
    this.#store = store;
    this.#pods = pods;
  }

  #target(ns: string, name: string, query: URLSearchParams, verb: string): string {
    const pod = this.#store.must("pods", ns, name);
    const c = pod.spec.containers[0];
    const wanted = query.get("container");
    if (wanted && wanted !== c.name) {
      throw new StatusError(400, "BadRequest", `container ${wanted} is not valid for pod ${name}`);
    }
    if (pod.status.phase === "Succeeded" || pod.status.phase === "Failed") {
      throw new StatusError(
        400,
        "BadRequest",
        `cannot ${verb} into a container in a completed pod; current phase is ${pod.status.phase}`,
      );
    }
    const id = this.#pods.containerOf(ns, name);
    if (!id || !pod.status.containerStatuses?.[0]?.state?.running) {
      throw new StatusError(400, "BadRequest", `container ${c.name} not found (${name})`);
    }
    return id;
  }

  /** Handles one upgrade request for `exec` or `attach`. */
  handle(
    verb: "exec" | "attach",
    ns: string,
    name: string,
    query: URLSearchParams,
    req: IncomingMessage,
    socket: Duplex,
    head: Uint8Array,
  ): void {
    let id: string;
    try {
      id = this.#target(ns, name, query, verb);
    } catch (error) {
      if (error instanceof StatusError) {
        rejectUpgrade(socket, error.code, JSON.stringify(error.toStatus()));
        return;
      }
      throw error;
    }
    const wantStdin = query.get("stdin") === "true" || query.get("stdin") === "1";
    const wantStdout = query.get("stdout") !== "false" && query.get("stdout") !== "0";
    const wantStderr = query.get("stderr") !== "false" && query.get("stderr") !== "0";
    const command = query.getAll("command");
    if (verb === "exec" && command.length === 0) {
      rejectUpgrade(
        socket,
        400,
        JSON.stringify(
          new StatusError(400, "BadRequest", "you must specify at least 1 command").toStatus(),
        ),
      );
      return;
    }
    const ws = acceptWebSocket(req, socket, head, CHANNEL_PROTOCOLS);
    if (!ws) return;
    const args = verb === "exec"
      ? ["exec", ...(wantStdin ? ["-i"] : []), id, ...command]
      : ["attach", "--sig-proxy=false", ...(wantStdin ? [] : ["--no-stdin"]), id];
    const child = new Deno.Command("docker", {
      args,
      stdin: wantStdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#children.add(child);
    const stdin = wantStdin ? child.stdin.getWriter() : undefined;
    let stdinOpen = wantStdin;
    const closeStdin = () => {
      if (stdinOpen) {
        stdinOpen = false;
        stdin!.close().catch(() => {});
      }
    };
    let writes = Promise.resolve();
    ws.onMessage = (msg) => {
      if (msg.length === 0) return;
      const channel = msg[0];
      if (channel === 0 && stdinOpen) {
        const data = msg.slice(1);
        writes = writes.then(() => stdin!.write(data)).catch(() => {});
      } else if (channel === 255 && msg[1] === 0 && ws.protocol.startsWith("v5")) {
        writes = writes.then(closeStdin);
      }
    };
    ws.onClose = () => {
      writes = writes.then(closeStdin);
      if (verb === "exec") {
        try {
          child.kill("SIGKILL");
        } catch { /* already exited */ }
      }
    };
    const pump = async (stream: ReadableStream<Uint8Array>, channel: number, keep: boolean) => {
      for await (const chunk of stream) {
        if (!keep) continue;
        const out = new Uint8Array(chunk.length + 1);
        out[0] = channel;
        out.set(chunk, 1);
        ws.send(out);
      }
    };
    void (async () => {
      const [status] = await Promise.all([
        child.status,
        pump(child.stdout, 1, wantStdout),
        pump(child.stderr, 2, wantStderr),
      ]);
      this.#children.delete(child);
      ws.send(statusFrame(
        verb === "exec" ? exitStatus(status.code, command) : {
          metadata: {},
          status: "Success",
        },
      ));
      ws.close();
    })();
  }

  /** Kills the commands still running. */
  async close(): Promise<void> {
    for (const child of this.#children) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }
    await Promise.all([...this.#children].map((c) => c.status));
  }
}
