/**
 * Connection attempts that an abort signal ends: `Deno.connect` (and an SSH channel open) cannot
 * be cancelled (a connection to an address that went away waits for the kernel's timeout), so
 * the attempt is raced with the signal and a connection that arrives afterwards is disposed of.
 *
 * @module
 */

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
