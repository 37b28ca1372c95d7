/**
 * Secret masking: every secret value, its base64 form (also with a trailing newline,
 * as `echo "$SECRET" | base64` prints it) and each line of a
 * multi-line value become `***`, in whole strings and in streams whose chunks may
 * split a value anywhere.
 *
 * @module
 */

/** The replacement text for a masked value. */
export const MASK = "***";

/** Lines of a multi-line secret shorter than this are not masked on their own (they would mask ordinary text). */
const MIN_LINE_LENGTH = 4;

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** The strings to mask for a set of secret values, longest first. */
export function maskPatterns(values: Iterable<string>): string[] {
  const patterns = new Set<string>();
  for (const value of values) {
    if (value === "") continue;
    patterns.add(value);
    patterns.add(base64(value));
    // What `echo "$SECRET" | base64` prints.
    patterns.add(base64(value + "\n"));
    if (/[\r\n]/.test(value)) {
      for (const line of value.split(/\r?\n|\r/)) {
        const trimmed = line.trim();
        if (trimmed.length >= MIN_LINE_LENGTH) {
          patterns.add(trimmed);
          patterns.add(base64(trimmed));
        }
      }
    }
  }
  return [...patterns].sort((a, b) => b.length - a.length);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Masks secrets in text. */
export class Masker {
  readonly #patterns: string[];
  readonly #regex: RegExp | undefined;

  /** Creates a masker for `values` (empty values are ignored). */
  constructor(values: Iterable<string> = []) {
    this.#patterns = maskPatterns(values);
    this.#regex = this.#patterns.length === 0
      ? undefined
      : new RegExp(this.#patterns.map(escapeRegExp).join("|"), "g");
  }

  /** Whether there is anything to mask. */
  get empty(): boolean {
    return this.#regex === undefined;
  }

  /** The length of the longest pattern. */
  get longest(): number {
    return this.#patterns[0]?.length ?? 0;
  }

  /** Returns `text` with every secret replaced by `***`. */
  mask(text: string): string {
    return this.#regex === undefined ? text : text.replace(this.#regex, MASK);
  }

  /** Masks every string inside a JSON-like value. */
  maskDeep<T>(value: T): T {
    if (this.#regex === undefined) return value;
    if (typeof value === "string") return this.mask(value) as T;
    if (Array.isArray(value)) return value.map((item) => this.maskDeep(item)) as T;
    if (typeof value === "object" && value !== null && !(value instanceof Uint8Array)) {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) out[key] = this.maskDeep(item);
      return out as T;
    }
    return value;
  }

  /**
   * The length of the longest suffix of `text` that starts some pattern without
   * completing it: that much must wait for the next chunk.
   */
  pendingSuffix(text: string): number {
    const max = Math.min(this.longest - 1, text.length);
    for (let length = max; length > 0; length--) {
      const tail = text.slice(text.length - length);
      if (this.#patterns.some((pattern) => pattern.length > length && pattern.startsWith(tail))) {
        return length;
      }
    }
    return 0;
  }

  /** A stream masker that decodes bytes and masks values split across chunks. */
  stream(): StreamMasker {
    return new StreamMasker(this);
  }
}

/**
 * Masks a byte stream chunk by chunk. Text that could be the start of a secret is
 * held back until the next chunk (or `flush`) decides it; everything else passes
 * through immediately.
 */
export class StreamMasker {
  readonly #masker: Masker;
  readonly #decoder = new TextDecoder();
  #pending = "";

  /** Creates a stream masker; use {@link Masker.stream}. */
  constructor(masker: Masker) {
    this.#masker = masker;
  }

  /** Masks a chunk; returns the text that is safe to emit now (possibly empty). */
  push(chunk: Uint8Array): string {
    const text = this.#pending + this.#decoder.decode(chunk, { stream: true });
    if (this.#masker.empty) {
      this.#pending = "";
      return text;
    }
    const masked = this.#masker.mask(text);
    const hold = this.#masker.pendingSuffix(masked);
    this.#pending = masked.slice(masked.length - hold);
    return masked.slice(0, masked.length - hold);
  }

  /** Emits whatever was held back. */
  flush(): string {
    const rest = this.#masker.mask(this.#pending + this.#decoder.decode());
    this.#pending = "";
    return rest;
  }
}
