/**
 * Opens a byte stream to a guest agent: a unix socket (a QEMU virtio-serial chardev, the
 * agent run on the host in tests, vfkit's vsock-to-unix bridge) or an AF_VSOCK port.
 *
 * @module
 */

import type { AgentStream } from "./client.ts";

/** Connects to a unix socket. */
export async function connectUnix(path: string): Promise<AgentStream> {
  const conn = await Deno.connect({ transport: "unix", path });
  return { readable: conn.readable, writable: conn.writable, close: () => conn.close() };
}

/** Connects to a vsock port of the guest with context id `cid`. */
export async function connectVsock(cid: number, port: number): Promise<AgentStream> {
  const conn = await Deno.connect({ transport: "vsock", cid, port });
  return { readable: conn.readable, writable: conn.writable, close: () => conn.close() };
}
