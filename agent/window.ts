/**
 * Flow control for one data stream: the sender spends credits the receiver granted
 * (starting at {@link INITIAL_WINDOW}) and waits when none are left, so a fast producer
 * never has more than one window of bytes in flight, whatever the reader does.
 *
 * @module
 */

import { INITIAL_WINDOW } from "./protocol.ts";

/** The sender's side of a stream's window. */
export class SendWindow {
  #credits: number;
  #waiter: (() => void) | undefined;
  #closed: Error | undefined;

  /** Starts with `initial` credits. */
  constructor(initial: number = INITIAL_WINDOW) {
    this.#credits = initial;
  }

  /** Credits not yet spent. */
  get available(): number {
    return this.#credits;
  }

  /**
   * Spends between 1 and `wanted` credits, waiting while none are left. Rejects once
   * {@link close}d.
   */
  async acquire(wanted: number): Promise<number> {
    while (this.#credits === 0) {
      if (this.#closed) throw this.#closed;
      await new Promise<void>((resolve) => this.#waiter = resolve);
    }
    if (this.#closed) throw this.#closed;
    const granted = Math.min(wanted, this.#credits);
    this.#credits -= granted;
    return granted;
  }

  /** Adds credits the receiver granted. */
  grant(bytes: number): void {
    this.#credits += bytes;
    this.#wake();
  }

  /** Fails the pending and later {@link acquire} calls with `error`. */
  close(error: Error): void {
    this.#closed ??= error;
    this.#wake();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}

/**
 * The receiver's side: counts bytes received against the window it granted, so a sender
 * that overruns it is caught (a protocol error) instead of being buffered without bound.
 */
export class ReceiveWindow {
  #outstanding: number;

  /** Starts with `initial` bytes granted. */
  constructor(initial: number = INITIAL_WINDOW) {
    this.#outstanding = initial;
  }

  /** Records `bytes` received; false when they exceed what was granted. */
  receive(bytes: number): boolean {
    if (bytes > this.#outstanding) return false;
    this.#outstanding -= bytes;
    return true;
  }

  /** Records a grant of `bytes` sent to the peer. */
  granted(bytes: number): void {
    this.#outstanding += bytes;
  }
}
