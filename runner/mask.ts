/**
 * Secret masking: every secret value and the forms tools print on their own (see
 * {@link secretForms}: URL-encoded, JSON-escaped, base64 at any alignment) and each line
 * of a multi-line value become `***`, in whole strings and in streams whose chunks may
 * split a value anywhere. PocketCI's own paths and IDs (the run ID, the state directory)
 * are never masked inside, even when a secret happens to occur in them.
 *
 * @module
 */

import { base64, MIN_SECRET_LENGTH, secretForms } from "./secret_forms.ts";

/** The replacement text for a masked value. */
export const MASK = "***";

/** The longest one-line message (error, warning) the runner shows, after masking. */
export const MAX_LINE = 500;

/** The strings to mask for a set of secret values, longest first. */
export function maskPatterns(values: Iterable<string>): string[] {
  const patterns = new Set<string>();
  for (const value of values) {
    for (const form of secretForms(value)) if (form !== "") patterns.add(form);
    if (/[\r\n]/.test(value)) {
      for (const line of value.split(/\r?\n|\r/)) {
        const trimmed = line.trim();
        // Shorter lines of a multi-line secret would mask ordinary text.
        if (trimmed.length >= MIN_SECRET_LENGTH) {
          patterns.add(trimmed);
          patterns.add(base64(trimmed));
        }
      }
    }
  }
  return [...patterns].sort((a, b) => b.length - a.length);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

interface TrieNode {
  readonly children: Map<string, TrieNode>;
  end: boolean;
}

/**
 * One regular expression source matching any of `patterns`, longest first, as a trie: a
 * plain alternation of dozens of literals makes the engine try each at every position
 * (several times slower on long output).
 */
export function trieSource(patterns: readonly string[]): string {
  const root: TrieNode = { children: new Map(), end: false };
  for (const pattern of patterns) {
    let node = root;
    for (const char of pattern) {
      let next = node.children.get(char);
      if (next === undefined) node.children.set(char, next = { children: new Map(), end: false });
      node = next;
    }
    node.end = true;
  }
  const emit = (start: TrieNode): string => {
    // A chain of single children is one literal run (no recursion per character).
    let literal = "";
    let node = start;
    while (node.children.size === 1 && !node.end) {
      const [char, next] = node.children.entries().next().value!;
      literal += escapeRegExp(char);
      node = next;
    }
    if (node.children.size === 0) return literal;
    const branches = [...node.children].map(([char, child]) => escapeRegExp(char) + emit(child));
    const group = `(?:${branches.join("|")})`;
    // Greedy "?": the longer pattern wins when a shorter one ends here.
    return literal + (node.end ? `${group}?` : group);
  };
  return emit(root);
}

/** What a {@link Masker} needs besides the secret values. */
export interface MaskerOptions {
  /** PocketCI's own strings (run ID, state directory): a secret inside one stays as it is. */
  readonly protect?: Iterable<string>;
}

/** Masks secrets in text. */
export class Masker {
  readonly #patterns: string[];
  readonly #regex: RegExp | undefined;
  readonly #protected: string[];

  /** Creates a masker for `values` (empty values are ignored). */
  constructor(values: Iterable<string> = [], options: MaskerOptions = {}) {
    this.#patterns = maskPatterns(values);
    this.#regex = this.#patterns.length === 0
      ? undefined
      : new RegExp(trieSource(this.#patterns), "g");
    this.#protected = [...new Set(options.protect ?? [])].filter((text) => text !== "");
  }

  /** Whether there is anything to mask. */
  get empty(): boolean {
    return this.#regex === undefined;
  }

  /** The length of the longest pattern. */
  get longest(): number {
    return this.#patterns[0]?.length ?? 0;
  }

  /**
   * Returns `text` with every secret replaced by `***`, except inside PocketCI's own
   * strings (see {@link MaskerOptions.protect}).
   */
  mask(text: string): string {
    if (this.#regex === undefined) return text;
    const kept = this.#protectedRanges(text);
    if (kept.length === 0) return text.replace(this.#regex, MASK);
    return text.replace(
      this.#regex,
      (match: string, offset: number) =>
        kept.some(([start, end]) => offset >= start && offset + match.length <= end) ? match : MASK,
    );
  }

  #protectedRanges(text: string): [number, number][] {
    const ranges: [number, number][] = [];
    for (const own of this.#protected) {
      for (let at = text.indexOf(own); at !== -1; at = text.indexOf(own, at + 1)) {
        ranges.push([at, at + own.length]);
      }
    }
    return ranges;
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
    const windowStart = Math.max(0, text.length - this.longest + 1);
    let best = 0;
    for (const pattern of this.#patterns) {
      if (pattern.length - 1 <= best) break;
      const first = pattern[0];
      const from = Math.max(windowStart, text.length - pattern.length + 1);
      // The earliest start is the longest suffix; later ones are shorter.
      for (
        let at = text.indexOf(first, from);
        at !== -1 && text.length - at > best;
        at = text.indexOf(first, at + 1)
      ) {
        if (pattern.startsWith(text.slice(at))) {
          best = text.length - at;
          break;
        }
      }
    }
    return best;
  }

  /** A stream masker that decodes bytes and masks values split across chunks. */
  stream(): StreamMasker {
    return new StreamMasker(this);
  }
}

/**
 * The first line of an error's message (or of `text`) for display: masked first, then
 * cut to `max` characters, so a secret straddling the cut is masked whole, never shown
 * in part.
 */
export function maskedLine(masker: Masker, error: unknown, max: number = MAX_LINE): string {
  const message = error instanceof Error ? error.message : String(error);
  const line = masker.mask(message).split("\n")[0];
  return line.length > max ? line.slice(0, max) + "..." : line;
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
