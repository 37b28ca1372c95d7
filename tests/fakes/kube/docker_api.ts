/**
 * A minimal Docker Engine API client for the fake API server: HTTP over the local Unix socket
 * with `fetch` (streams stay streams), plus the multiplexed-stream reader for logs.
 *
 * @module
 */

const API = "http://docker/v1.41";

/** A Docker Engine API error with the engine's status code. */
export class DockerApiError extends Error {
  /** HTTP status from the engine. */
  readonly status: number;
  /** Creates the error. */
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** A client for the engine at `/var/run/docker.sock`. */
export class DockerApi {
  #client = Deno.createHttpClient({
    proxy: { transport: "unix", path: "/var/run/docker.sock" },
  });

  /** Sends one request; JSON bodies in and out; throws {@link DockerApiError} on >= 400. */
  async request(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
  ): Promise<Response> {
    const res = await fetch(`${API}${path}`, {
      method,
      client: this.#client,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    if (res.status >= 400) {
      const text = await res.text();
      let message = text;
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch { /* not JSON */ }
      throw new DockerApiError(res.status, message.trim());
    }
    return res;
  }

  /** Sends a request and parses the JSON answer (or returns `undefined` for an empty one). */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body);
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Closes the HTTP client. */
  close(): void {
    this.#client.close();
  }
}

/** One frame of a multiplexed (non-TTY) stream: 1 stdout, 2 stderr. */
export interface MuxFrame {
  /** 1 stdout, 2 stderr. */
  readonly stream: number;
  /** The payload. */
  readonly data: Uint8Array;
}

/** Reads Docker's multiplexed stream frame by frame. */
export async function* readMux(body: ReadableStream<Uint8Array>): AsyncGenerator<MuxFrame> {
  let buf = new Uint8Array(0);
  for await (const chunk of body) {
    const joined = new Uint8Array(buf.length + chunk.length);
    joined.set(buf);
    joined.set(chunk, buf.length);
    buf = joined;
    while (buf.length >= 8) {
      const size = new DataView(buf.buffer, buf.byteOffset).getUint32(4);
      if (buf.length < 8 + size) break;
      yield { stream: buf[0], data: buf.slice(8, 8 + size) };
      buf = buf.slice(8 + size);
    }
  }
}
