/**
 * Where the agent meets the host: a listening vsock port (Apple VZ's virtio socket
 * device), a listening unix socket (tests on the host), or a character device such as a
 * virtio-serial port (QEMU) on stdin and stdout, which carries one host connection after
 * another.
 *
 * @module
 */

import type { Duplex } from "./session.ts";

/** Where to serve. */
export type Endpoint =
  | { readonly kind: "vsock"; readonly port: number }
  | { readonly kind: "unix"; readonly path: string }
  | { readonly kind: "stdio" };

/** Parses `vsock:PORT`, `unix:PATH` or `stdio`; throws a one-line error. */
export function parseEndpoint(text: string): Endpoint {
  const colon = text.indexOf(":");
  const kind = colon < 0 ? text : text.slice(0, colon);
  const value = colon < 0 ? "" : text.slice(colon + 1);
  if (kind === "vsock" && /^\d+$/.test(value) && Number(value) < 2 ** 32) {
    return { kind, port: Number(value) };
  }
  if (kind === "unix" && value.startsWith("/")) return { kind, path: value };
  if (text === "stdio") return { kind: "stdio" };
  throw new Error(
    `--listen=${text} is not an endpoint; use vsock:PORT, unix:/ABSOLUTE/PATH or stdio (a character device opened on stdin and stdout)`,
  );
}

/** Calls `serve` for every host connection; resolves only when the listener fails. */
export async function serveEndpoint(
  endpoint: Endpoint,
  serve: (conn: Duplex) => Promise<void>,
  onReady: () => void,
): Promise<void> {
  if (endpoint.kind === "stdio") {
    // A character device (a virtio-serial port) opened read-write on stdin and stdout by the
    // start script: two Deno resources, so a pending read never holds up a write (reads and
    // writes on one Deno.FsFile run one after another). It stays open for the agent's life:
    // host data sent while a port is closed can stay stuck in QEMU.
    const device = new DeviceStream(
      (buffer) => Deno.stdin.read(buffer),
      (bytes) => Deno.stdout.write(bytes),
    );
    onReady();
    while (true) {
      const started = Date.now();
      await serve(device.session());
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

/**
 * A character device carrying one host connection after another: each {@link session} is a
 * stream pair that ends at the device's next end of file (the host end went away). A read
 * still pending when a session is cancelled is handed to the next session, never lost.
 */
export class DeviceStream {
  readonly #read: (buffer: Uint8Array) => Promise<number | null>;
  readonly #write: (bytes: Uint8Array) => Promise<number>;
  #inflight: Promise<Uint8Array | null> | undefined;

  /** Reads and writes the device through these. */
  constructor(
    read: (buffer: Uint8Array) => Promise<number | null>,
    write: (bytes: Uint8Array) => Promise<number>,
  ) {
    this.#read = read;
    this.#write = write;
  }

  /** The next chunk, or null at an end of file. */
  read(): Promise<Uint8Array | null> {
    this.#inflight ??= (async () => {
      const buffer = new Uint8Array(64 * 1024);
      const count = await this.#read(buffer);
      return count === null ? null : buffer.subarray(0, count);
    })().finally(() => this.#inflight = undefined);
    return this.#inflight;
  }

  /** A stream pair for one host connection. */
  session(): Duplex {
    const readable = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const chunk = await this.read();
        if (chunk === null) controller.close();
        else controller.enqueue(chunk);
      },
    });
    const writable = new WritableStream<Uint8Array>({
      write: async (chunk) => {
        let at = 0;
        while (at < chunk.length) at += await this.#write(chunk.subarray(at));
      },
    });
    return { readable, writable };
  }
}
