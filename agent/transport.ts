/**
 * Where the agent meets the host: a listening vsock port (Apple VZ's virtio socket
 * device), a listening unix socket (tests on the host), or a character device such as a
 * virtio-serial port (QEMU), which carries one host connection at a time and is reopened
 * after each.
 *
 * @module
 */

import type { Duplex } from "./session.ts";

/** Where to serve. */
export type Endpoint =
  | { readonly kind: "vsock"; readonly port: number }
  | { readonly kind: "unix"; readonly path: string }
  | { readonly kind: "device"; readonly path: string }
  | { readonly kind: "port-name"; readonly name: string };

/** Parses `vsock:PORT`, `unix:PATH`, `device:PATH` or `port-name:NAME`; throws a one-line error. */
export function parseEndpoint(text: string): Endpoint {
  const colon = text.indexOf(":");
  const kind = colon < 0 ? text : text.slice(0, colon);
  const value = colon < 0 ? "" : text.slice(colon + 1);
  if (kind === "vsock" && /^\d+$/.test(value) && Number(value) < 2 ** 32) {
    return { kind, port: Number(value) };
  }
  if ((kind === "unix" || kind === "device") && value.startsWith("/")) return { kind, path: value };
  if (kind === "port-name" && value !== "") return { kind, name: value };
  throw new Error(
    `--listen=${text} is not an endpoint; use vsock:PORT, unix:/ABSOLUTE/PATH, device:/dev/PATH or port-name:NAME`,
  );
}

/** Calls `serve` for every host connection; resolves only when the listener fails. */
export async function serveEndpoint(
  endpoint: Endpoint,
  serve: (conn: Duplex) => Promise<void>,
  onReady: () => void,
): Promise<void> {
  if (endpoint.kind === "device" || endpoint.kind === "port-name") {
    const path = endpoint.kind === "device" ? endpoint.path : await findPort(endpoint.name);
    onReady();
    while (true) {
      const file = await Deno.open(path, { read: true, write: true });
      const started = Date.now();
      await serve({ readable: file.readable, writable: file.writable });
      try {
        file.close();
      } catch {
        // Already closed by the streams.
      }
      // A port whose host side is not connected reads as end of file at once: wait a little.
      if (Date.now() - started < 100) await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  const listener = endpoint.kind === "unix"
    ? Deno.listen({ transport: "unix", path: endpoint.path })
    : Deno.listen({ transport: "vsock", cid: -1, port: endpoint.port });
  onReady();
  for await (const conn of listener) void serve(conn);
}

/** The /dev path of the virtio-serial port called `name` (udev may not exist to link it). */
export async function findPort(name: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    try {
      for await (const entry of Deno.readDir("/sys/class/virtio-ports")) {
        const portName = await Deno.readTextFile(`/sys/class/virtio-ports/${entry.name}/name`)
          .catch(() => "");
        if (portName.trim() === name) return `/dev/${entry.name}`;
      }
    } catch {
      // No virtio-ports class yet (the module is still loading).
    }
    if (Date.now() > deadline) {
      throw new Error(`no virtio-serial port named ${name} in /sys/class/virtio-ports`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
