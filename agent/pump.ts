/**
 * Sends a byte source as DATA frames within a stream's window: at most {@link MAX_CHUNK}
 * per frame and never more than the credits granted, so reading the source pauses
 * (and a producing process blocks on its pipe) while the receiver is behind.
 *
 * @module
 */

import { MAX_CHUNK } from "./protocol.ts";
import type { SendWindow } from "./window.ts";

/** Sends every chunk `reader` yields through `send`, spending `window`'s credits. */
export async function pumpWithCredits(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  window: SendWindow,
  send: (bytes: Uint8Array) => Promise<void>,
): Promise<void> {
  while (true) {
    const { value, done } = await reader.read();
    if (done) return;
    let offset = 0;
    while (offset < value.length) {
      const count = await window.acquire(Math.min(MAX_CHUNK, value.length - offset));
      await send(value.subarray(offset, offset + count));
      offset += count;
    }
  }
}
