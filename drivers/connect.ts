/**
 * Connection attempts that an abort signal ends: `Deno.connect` (and an SSH channel open) cannot
 * be cancelled (a connection to an address that went away waits for the kernel's timeout), so
 * the attempt is raced with the signal and a connection that arrives afterwards is disposed of.
 *
 * @module
 */

import type { ProbeConnection } from "./contract.ts";

/** Resolves with `attempt`, or rejects with the signal's reason once it aborts (then disposes). */
export function raceAbort<T>(
  attempt: Promise<T>,
  signal: AbortSignal,
  dispose: (value: T) => void,
): Promise<T> {
  if (signal.aborted) {
    attempt.then(dispose, () => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      reject(signal.reason);
      attempt.then(dispose, () => {});
    };
    signal.addEventListener("abort", onAbort, { once: true });
    attempt.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) dispose(value);
        else resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/** Connects to `hostname:port`; rejects with the signal's reason once it aborts. */
export function connectAbortable(
  hostname: string,
  port: number,
  signal: AbortSignal,
): Promise<Deno.TcpConn> {
  signal.throwIfAborted();
  return raceAbort(Deno.connect({ hostname, port }), signal, (conn) => conn.close());
}

/**
 * A TCP connection to `hostname:port` for a service's readiness probe, closed when `signal`
 * aborts (or by `close()`, safe to call more than once).
 */
export async function dialTcp(
  hostname: string,
  port: number,
  signal: AbortSignal,
): Promise<ProbeConnection> {
  const conn = await connectAbortable(hostname, port, signal);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  signal.addEventListener("abort", close, { once: true });
  return { readable: conn.readable, writable: conn.writable, close };
}
