/**
 * `pods/portforward` over WebSocket (`v4.channel.k8s.io`), as the kubelet's streaming server
 * speaks it: one port per request (`?ports=P`); channel 0 carries data and channel 1 errors, and
 * the first message the server sends on each is the port as two little-endian bytes. The fake
 * connects to the pod's IP on the cluster's docker network; a refused connection is reported on
 * the error channel (`error forwarding port P to pod ...`), then the socket closes.
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { acceptWebSocket } from "./websocket.ts";
import { StatusError, type Store } from "./store.ts";

/** The subprotocol the kubelet's WebSocket port forwarding speaks. */
export const PORT_FORWARD_PROTOCOLS = ["v4.channel.k8s.io"] as const;

function channelMessage(channel: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 1);
  out[0] = channel;
  out.set(data, 1);
  return out;
}

/** Handles one `portforward` upgrade. */
export async function handlePortForward(
  store: Store,
  ns: string,
  name: string,
  query: URLSearchParams,
  req: IncomingMessage,
  socket: Duplex,
  head: Uint8Array,
): Promise<void> {
  const pod = store.must("pods", ns, name);
  const ports = (query.get("ports") ?? "").split(",").filter((p) => p !== "");
  const port = Number(ports[0]);
  if (ports.length !== 1 || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new StatusError(400, "BadRequest", `invalid port value "${query.get("ports") ?? ""}"`);
  }
  if (pod.status.phase !== "Running" || !pod.status.podIP) {
    throw new StatusError(
      400,
      "BadRequest",
      `pod ${name} does not have a host assigned or is not running (phase ${pod.status.phase})`,
    );
  }
  const ws = acceptWebSocket(req, socket, head, PORT_FORWARD_PROTOCOLS);
  if (!ws) return;
  const portBytes = new Uint8Array([port & 0xff, port >> 8]);
  ws.send(channelMessage(0, portBytes));
  ws.send(channelMessage(1, portBytes));
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: pod.status.podIP, port });
  } catch (error) {
    const text =
      `error forwarding port ${port} to pod ${name}: dial tcp ${pod.status.podIP}:${port}: ${
        (error as Error).message
      }`;
    ws.send(channelMessage(1, new TextEncoder().encode(text)));
    ws.close();
    return;
  }
  const writer = conn.writable.getWriter();
  let open = true;
  const finish = () => {
    if (!open) return;
    open = false;
    writer.close().catch(() => {});
    ws.close();
  };
  ws.onMessage = (data) => {
    if (data[0] === 0 && data.length > 1) writer.write(data.subarray(1)).catch(finish);
  };
  ws.onClose = finish;
  try {
    for await (const chunk of conn.readable) ws.send(channelMessage(0, chunk));
  } catch {
    // The pod went away.
  }
  finish();
}
