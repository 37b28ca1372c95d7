/**
 * A text buffer that keeps the head and the tail of what it is given, so a task
 * printing gigabytes cannot exhaust memory; the middle is replaced by a marker.
 *
 * @module
 */

/** Default bytes (UTF-16 code units) kept at each end. */
export const DEFAULT_KEEP = 512 * 1024;

/** Keeps the first and last `keep` characters of appended text. */
export class BoundedText {
  readonly #keep: number;
  #head = "";
  #tail = "";
  #dropped = 0;

  /** Creates a buffer keeping `keep` characters at each end. */
  constructor(keep: number = DEFAULT_KEEP) {
    this.#keep = keep;
  }

  /** Appends text. */
  append(text: string): void {
    if (text === "") return;
    if (this.#head.length < this.#keep) {
      const room = this.#keep - this.#head.length;
      this.#head += text.slice(0, room);
      text = text.slice(room);
      if (text === "") return;
    }
    this.#tail += text;
    if (this.#tail.length > this.#keep * 2) this.#trim();
  }

  #trim(): void {
    if (this.#tail.length > this.#keep) {
      this.#dropped += this.#tail.length - this.#keep;
      this.#tail = this.#tail.slice(this.#tail.length - this.#keep);
    }
  }

  /** Whether anything was dropped. */
  get truncated(): boolean {
    this.#trim();
    return this.#dropped > 0;
  }

  /** The kept text, with a marker where the middle was dropped. */
  toString(): string {
    this.#trim();
    if (this.#dropped === 0) return this.#head + this.#tail;
    return `${this.#head}\n[... pocketci: ${this.#dropped} characters truncated ...]\n${this.#tail}`;
  }

  /** The last `count` lines of the kept text. */
  lastLines(count: number): string[] {
    const lines = this.toString().replace(/\n$/, "").split("\n");
    return lines[0] === "" && lines.length === 1 ? [] : lines.slice(-count);
  }
}
