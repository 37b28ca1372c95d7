/**
 * Run IDs: unique per run, sortable by start time, safe as a DNS label or resource tag.
 *
 * @module
 */

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const TIME_CHARS = 10;
const RANDOM_CHARS = 8;

/**
 * A new run ID: 10 characters of millisecond timestamp then 8 random characters, all from
 * a lowercase base-32 alphabet (`[0-9a-z]` without i, l, o, u). IDs made later sort after
 * IDs made in an earlier millisecond.
 */
export function newRunId(): string {
  let time = Date.now();
  let id = "";
  for (let i = 0; i < TIME_CHARS; i++) {
    id = ALPHABET[time % 32] + id;
    time = Math.floor(time / 32);
  }
  const random = crypto.getRandomValues(new Uint8Array(RANDOM_CHARS));
  for (const byte of random) id += ALPHABET[byte % 32];
  return id;
}
