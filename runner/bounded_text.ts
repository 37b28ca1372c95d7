/**
 * A text buffer that keeps the head and the tail of what it is given, so a task
 * printing gigabytes cannot exhaust memory; the middle is replaced by a marker.
 *
 * The tail is kept as UTF-8 in byte blocks that are reused, not as strings: a string
 * kept while the next half megabyte of output arrives outlives the JavaScript engine's
 * young generation, so a task streaming hundreds of megabytes left as much garbage in
 * the old generation, and the runner's peak memory grew by about 100 MB. As in any
 * UTF-8 output, a lone surrogate in the tail becomes U+FFFD.
 *
 * @module
 */

/** Default characters (UTF-16 code units) kept at each end. */
export const DEFAULT_KEEP = 512 * 1024;

/** Largest tail block in bytes. */
const MAX_BLOCK = 64 * 1024;

/** Smallest tail block in bytes (room for any UTF-8 sequence). */
const MIN_BLOCK = 1024;

interface Block {
  readonly bytes: Uint8Array;
  /** Bytes written. */
  used: number;
  /** Characters (UTF-16 code units) those bytes encode. */
  chars: number;
}

const encoder = new TextEncoder();
// Blocks hold whole UTF-8 sequences, so each decodes on its own; a U+FEFF at a block's
// start is text, not a byte order mark.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** Keeps the first and last `keep` characters of appended text. */
export class BoundedText {
  readonly #keep: number;
  readonly #blockSize: number;
  #head = "";
  #headOpen: boolean;
  readonly #blocks: Block[] = [];
  readonly #spares: Block[] = [];
  /** Characters in `#blocks`. */
  #tailChars = 0;
  /** Characters dropped with whole blocks (more may be past `keep` in `#blocks`). */
  #dropped = 0;

  /** Creates a buffer keeping `keep` characters at each end. */
  constructor(keep: number = DEFAULT_KEEP) {
    this.#keep = keep;
    this.#headOpen = keep > 0;
    this.#blockSize = Math.min(MAX_BLOCK, Math.max(MIN_BLOCK, keep));
  }

  /** Appends text. */
  append(text: string): void {
    if (text === "") return;
    if (this.#headOpen) {
      let room = this.#keep - this.#head.length;
      if (text.length <= room) {
        this.#head += text;
        return;
      }
      // A surrogate pair stays whole: the tail is UTF-8, which cannot hold half of one.
      if (isHighSurrogate(text.charCodeAt(room - 1))) room--;
      this.#head += text.slice(0, room);
      this.#headOpen = false;
      text = text.slice(room);
    }
    if (text.length > this.#keep) {
      // Only its last `keep` characters can stay.
      let from = text.length - this.#keep;
      if (isHighSurrogate(text.charCodeAt(from - 1)) && isLowSurrogate(text.charCodeAt(from))) {
        from--;
      }
      this.#dropped += this.#tailChars + from;
      this.#tailChars = 0;
      this.#spares.push(...this.#blocks.splice(0).map(recycled));
      text = text.slice(from);
    }
    while (text !== "") {
      let block = this.#blocks.at(-1);
      if (block === undefined || block.used === block.bytes.length) block = this.#newBlock();
      const { read, written } = encoder.encodeInto(text, block.bytes.subarray(block.used));
      if (read === 0) {
        // The next character does not fit in what is left of the block.
        this.#newBlock();
        continue;
      }
      block.used += written;
      block.chars += read;
      this.#tailChars += read;
      text = read === text.length ? "" : text.slice(read);
    }
    while (this.#blocks.length > 1 && this.#tailChars - this.#blocks[0].chars >= this.#keep) {
      const first = this.#blocks.shift()!;
      this.#tailChars -= first.chars;
      this.#dropped += first.chars;
      this.#spares.push(recycled(first));
    }
  }

  #newBlock(): Block {
    const block = this.#spares.pop() ??
      { bytes: new Uint8Array(this.#blockSize), used: 0, chars: 0 };
    this.#blocks.push(block);
    return block;
  }

  /** Characters dropped between head and tail. */
  get #droppedTotal(): number {
    return this.#dropped + Math.max(0, this.#tailChars - this.#keep);
  }

  /** Whether anything was dropped. */
  get truncated(): boolean {
    return this.#droppedTotal > 0;
  }

  /** The kept text, with a marker where the middle was dropped. */
  toString(): string {
    let tail = "";
    for (const block of this.#blocks) tail += decoder.decode(block.bytes.subarray(0, block.used));
    const dropped = this.#droppedTotal;
    if (dropped === 0) return this.#head + tail;
    if (tail.length > this.#keep) tail = tail.slice(tail.length - this.#keep);
    return `${this.#head}\n[... pocketci: ${dropped} characters truncated ...]\n${tail}`;
  }

  /** The last `count` lines of the kept text. */
  lastLines(count: number): string[] {
    const lines = this.toString().replace(/\n$/, "").split("\n");
    return lines[0] === "" && lines.length === 1 ? [] : lines.slice(-count);
  }
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

function recycled(block: Block): Block {
  block.used = 0;
  block.chars = 0;
  return block;
}
