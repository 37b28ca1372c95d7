/**
 * Attaching to a container over a Unix socket without the Node HTTP layer: one `Deno.connect`,
 * the upgrade request written by hand, then the raw multiplexed stream read straight from the
 * socket. For a task printing hundreds of megabytes this needs markedly less memory than the same
 * stream through dockerode (node:http and stream emulation). Standard input is written to the
 * same connection and ended with a half-close.
 *
 * @module
 */

import type { OutputSink } from "../contract.ts";
import { Demuxer } from "./demux.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An open attach connection. */
export interface RawAttach {
  /** Resolves when the container's output has ended (or the connection broke). */
  readonly done: Promise<void>;
  /** Writes bytes to the container's standard input and closes it. */
  sendStdin(bytes: Uint8Array): Promise<void>;
  /** Closes the connection (output that was not read yet is dropped). */
  close(): void;
}

/** An error response from the engine, with its HTTP status. */
export class AttachError extends Error {
  /** The HTTP status code. */
  readonly statusCode: number;
  /** Creates the error. */
  constructor(statusCode: number, message: string) {
    super(message);
    this.name = "AttachError";
    this.statusCode = statusCode;
  }
}

/**
 * Opens `POST /containers/{id}/attach` on the Unix socket at `socketPath` and starts delivering
 * demultiplexed output to `output`. Resolves once the engine accepted the attach.
 */
export async function rawAttach(
  socketPath: string,
  containerId: string,
  options: { readonly stdin: boolean },
  output: OutputSink,
): Promise<RawAttach> {
  const conn = await Deno.connect({ transport: "unix", path: socketPath });
  const query = `stream=1&stdout=1&stderr=1${options.stdin ? "&stdin=1" : ""}`;
  try {
    await conn.write(encoder.encode(
      `POST /containers/${encodeURIComponent(containerId)}/attach?${query} HTTP/1.1\r\n` +
        "Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n",
    ));
  } catch (error) {
    conn.close();
    throw error;
  }
  // Reads of 64 KiB: the engine writes frames of at most 32 KiB, and smaller chunks keep what
  // sinks make of them (strings) in the JavaScript engine's young generation.
  const buffer = new Uint8Array(64 * 1024);
  // Read the response head; whatever follows it is already stream data.
  let head = new Uint8Array(0);
  let rest: Uint8Array;
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) {
      conn.close();
      throw new AttachError(
        0,
        "the engine closed the connection before answering the attach request",
      );
    }
    const merged = new Uint8Array(head.length + n);
    merged.set(head);
    merged.set(buffer.subarray(0, n), head.length);
    head = merged;
    const end = findHeadEnd(head);
    if (end >= 0) {
      rest = head.slice(end + 4);
      head = head.subarray(0, end);
      break;
    }
    if (head.length > 64 * 1024) {
      conn.close();
      throw new AttachError(0, "the engine sent an oversized response to the attach request");
    }
  }
  const text = decoder.decode(head);
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
  if (status !== 101 && status !== 200) {
    conn.close();
    const body = decoder.decode(rest).trim();
    let message = body;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      // Not JSON: keep the text.
    }
    throw new AttachError(status, message || `attach failed with HTTP ${status}`);
  }
  const demuxer = new Demuxer(output);
  if (rest.length > 0) demuxer.push(rest);
  let closed = false;
  const done = (async () => {
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        // Sinks may not keep a chunk past the call (the contract's OutputSink), so one buffer
        // serves every read: 200 MB of output leave no 200 MB of garbage behind.
        demuxer.push(buffer.subarray(0, n));
      }
    } catch {
      // A reset connection ends the output like EOF; the exit status comes from the engine.
    } finally {
      if (!closed) {
        closed = true;
        conn.close();
      }
    }
  })();
  return {
    done,
    async sendStdin(bytes: Uint8Array): Promise<void> {
      try {
        let offset = 0;
        while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
        await conn.closeWrite();
      } catch {
        // The container exited without reading all of its input.
      }
    },
    close(): void {
      if (!closed) {
        closed = true;
        conn.close();
      }
    },
  };
}

function findHeadEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}
