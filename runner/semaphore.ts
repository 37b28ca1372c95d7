/**
 * A counting semaphore for `--parallelism N` (unlimited when N is undefined).
 *
 * @module
 */

/** Limits how many holders run at once; the rest wait in order. */
export class Semaphore {
  readonly #limit: number;
  #active = 0;
  readonly #waiting: { resolve: () => void; reject: (error: unknown) => void }[] = [];

  /** Creates a semaphore with `limit` slots (Infinity for none). */
  constructor(limit: number = Infinity) {
    this.#limit = limit;
  }

  /** How many slots are held. */
  get active(): number {
    return this.#active;
  }

  /** Waits for a slot; rejects with the signal's reason if it aborts first. Returns the release function. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#active < this.#limit) {
      this.#active++;
      return Promise.resolve(this.#releaser());
    }
    return new Promise((resolve, reject) => {
      const entry = {
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(this.#releaser());
        },
        reject,
      };
      const onAbort = () => {
        const index = this.#waiting.indexOf(entry);
        if (index >= 0) this.#waiting.splice(index, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(entry);
    });
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next.resolve();
      else this.#active--;
    };
  }
}
