/**
 * A TCP connection to a pod's port through `pods/portforward` (WebSocket, `v4.channel.k8s.io`),
 * as `kubectl port-forward` makes one: channel 0 carries the bytes, channel 1 the kubelet's errors.
 * The kubelet dials the port when the stream opens and reports a refusal on the error channel
 * at once, but says nothing on success: the connection counts as open once no error came within
 * {@link REFUSAL_WINDOW_MS}. Used for readiness probes, which must reach the service itself
 * (never a proxy that accepts before the server listens).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { PassThrough, Writable } from "node:stream";
import "./quiet_node.ts";
import { type KubeConfig, PortForward } from "@kubernetes/client-node";
import { DriverError, type ProbeConnection } from "../contract.ts";

/** How long a refusal on the error channel is waited for before the connection counts as open. */
export const REFUSAL_WINDOW_MS = 300;

/** Opens a connection to `port` of the pod; rejects when nothing listens there. */
export async function portForward(
  kc: KubeConfig,
  namespace: string,
  pod: string,
  port: number,
  signal: AbortSignal,
): Promise<ProbeConnection> {
  signal.throwIfAborted();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let finished = false;
  const readable = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
  });
  let refusal = "";
  let refused: (message: string) => void = () => {};
  const refusedPromise = new Promise<string>((resolve) => refused = resolve);
  const output = new Writable({
    write(chunk: Uint8Array, _encoding, callback) {
      if (!finished) controller.enqueue(new Uint8Array(chunk));
      callback();
    },
  });
  const errors = new Writable({
    write(chunk: Uint8Array, _encoding, callback) {
      refusal += new TextDecoder().decode(chunk);
      if (refusal.trim() !== "") refused(refusal.trim());
      callback();
    },
  });
  const input = new PassThrough();
  let ws: Awaited<ReturnType<PortForward["portForward"]>>;
  try {
    ws = await new PortForward(kc, true).portForward(namespace, pod, [port], output, errors, input);
  } catch (error) {
    throw new DriverError(
      "unavailable",
      `cannot forward port ${port} of pod ${pod}: ${
        String((error as Error).message).split("\n")[0]
      }`,
    );
  }
  const socket = ws as unknown as {
    close(): void;
    on(event: "close", listener: () => void): void;
  };
  const close = () => {
    if (finished) return;
    finished = true;
    input.end();
    socket.close();
    try {
      controller.close();
    } catch {
      // Already closed.
    }
  };
  socket.on("close", () => {
    if (refusal.trim() !== "" && !finished) {
      finished = true;
      controller.error(new Error(refusal.trim()));
      return;
    }
    close();
  });
  const onAbort = () => close();
  signal.addEventListener("abort", onAbort, { once: true });
  const verdict = await Promise.race([
    refusedPromise,
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), REFUSAL_WINDOW_MS)),
  ]);
  if (verdict !== undefined) {
    signal.removeEventListener("abort", onAbort);
    close();
    throw new DriverError("unavailable", `port ${port} of pod ${pod}: ${verdict.split("\n")[0]}`);
  }
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (!finished) input.write(Buffer.from(chunk));
    },
    close() {
      input.end();
    },
  });
  return {
    readable,
    writable,
    close: () => {
      signal.removeEventListener("abort", onAbort);
      close();
    },
  };
}
