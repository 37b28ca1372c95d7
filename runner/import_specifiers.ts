/**
 * Finds every import-like specifier in a module's raw text, without parsing it.
 *
 * The scan is an over-approximation on purpose: it looks at every occurrence of
 * `from`, `import` and `require` (in code, comments and strings alike), at every
 * `<reference ...>` tag and at the `@deno-types`, `@ts-types`, `@jsxImportSource`
 * and `@jsxImportSourceTypes` pragmas. No tokenizer decides what is code, so
 * nothing in the file (a regex literal with a quote, an unclosed comment) can hide
 * a later import from it. Extra hits are harmless: the caller checks them too.
 *
 * @module
 */

/** One specifier found in a module's text. */
export interface FoundSpecifier {
  /** The text between the quotes (or the pragma's value), as written. */
  readonly specifier: string;
  /** 1-based line of the keyword, tag or pragma. */
  readonly line: number;
  /** Why it cannot be checked as written (a backslash escape, a `${}` substitution). */
  readonly unreadable?: string;
  /** `lib` for a `<reference lib="...">` (a TypeScript library name, not a module). */
  readonly kind?: "lib";
}

const KEYWORDS = /\b(?:from|import|require)\b/g;
const REFERENCE = /<reference\b/gi;
const REFERENCE_ATTRIBUTE = /\s*([A-Za-z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/y;
const TYPES_PRAGMA = /@(?:deno|ts)-types\s*=\s*(?:"([^"\n\r]*)"|'([^'\n\r]*)'|([^\s"']+))/gi;
const JSX_PRAGMA = /@jsxImportSource(?:Types)?\s+([^\s]+)/gi;
const LINE_TERMINATOR = /[\n\r\u2028\u2029]/;

/** Skips whitespace and comments from `index`; returns the next index (or -1 in an unclosed comment). */
function skipGap(text: string, index: number): number {
  let i = index;
  while (i < text.length) {
    const char = text[i];
    if (/\s/.test(char)) {
      i++;
    } else if (text.startsWith("/*", i)) {
      const end = text.indexOf("*/", i + 2);
      if (end === -1) return -1;
      i = end + 2;
    } else if (text.startsWith("//", i)) {
      i += 2;
      while (i < text.length && !LINE_TERMINATOR.test(text[i])) i++;
    } else {
      return i;
    }
  }
  return i;
}

/** Reads the string literal opening at `index`; undefined when it is not closed. */
function readQuoted(
  text: string,
  index: number,
): { value: string; unreadable?: string } | undefined {
  const quote = text[index];
  let i = index + 1;
  while (i < text.length && text[i] !== quote) {
    // A quoted string cannot span lines; a template literal can.
    if (quote !== "`" && /[\n\r]/.test(text[i])) return undefined;
    i++;
  }
  if (i >= text.length) return undefined;
  const value = text.slice(index + 1, i);
  if (value.includes("\\")) return { value, unreadable: "it contains a backslash escape" };
  if (quote === "`" && value.includes("${")) {
    return { value, unreadable: "it is computed (a `${}` substitution)" };
  }
  return { value };
}

/** Every specifier-like string in `text` (see the module documentation for what counts). */
export function findSpecifiers(text: string): FoundSpecifier[] {
  const hits: { index: number; specifier: string; unreadable?: string; kind?: "lib" }[] = [];
  for (const keyword of text.matchAll(KEYWORDS)) {
    let i = skipGap(text, keyword.index + keyword[0].length);
    // `import(...)`, `require(...)`, and harmlessly `from(...)`; nested parentheses too.
    while (i !== -1 && text[i] === "(") i = skipGap(text, i + 1);
    if (i === -1 || !`"'\``.includes(text[i] ?? "x")) continue;
    const literal = readQuoted(text, i);
    if (literal === undefined) continue;
    hits.push({ index: keyword.index, specifier: literal.value, unreadable: literal.unreadable });
  }
  for (const tag of text.matchAll(REFERENCE)) {
    REFERENCE_ATTRIBUTE.lastIndex = tag.index + tag[0].length;
    for (let match; (match = REFERENCE_ATTRIBUTE.exec(text)) !== null;) {
      const value = match[2] ?? match[3];
      const name = match[1].toLowerCase();
      if (name === "path" || name === "types" || name === "lib") {
        hits.push({
          index: tag.index,
          specifier: value,
          unreadable: value.includes("\\") ? "it contains a backslash escape" : undefined,
          kind: name === "lib" ? "lib" : undefined,
        });
      }
    }
  }
  for (const pragma of text.matchAll(TYPES_PRAGMA)) {
    const value = pragma[1] ?? pragma[2] ?? pragma[3];
    hits.push({
      index: pragma.index,
      specifier: value,
      unreadable: value.includes("\\") ? "it contains a backslash escape" : undefined,
    });
  }
  for (const pragma of text.matchAll(JSX_PRAGMA)) {
    const value = pragma[1].replace(/\*\/.*$/, "").replace(/^["']|["']$/g, "");
    const unreadable = value.includes("\\") ? "it contains a backslash escape" : undefined;
    for (const specifier of [value, `${value}/jsx-runtime`, `${value}/jsx-dev-runtime`]) {
      hits.push({ index: pragma.index, specifier, unreadable });
    }
  }
  hits.sort((a, b) => a.index - b.index);
  const found: FoundSpecifier[] = [];
  let line = 1;
  let counted = 0;
  for (const hit of hits) {
    for (; counted < hit.index; counted++) if (text[counted] === "\n") line++;
    found.push({
      specifier: hit.specifier,
      line,
      ...(hit.unreadable === undefined ? {} : { unreadable: hit.unreadable }),
      ...(hit.kind === undefined ? {} : { kind: hit.kind }),
    });
  }
  return found;
}

/**
 * Decodes a module's bytes the ways Deno may: as UTF-8 (BOM stripped) and, when the
 * file starts with a UTF-16 byte order mark, as UTF-16 too (Deno honours it).
 */
export function moduleTexts(bytes: Uint8Array): string[] {
  const texts = [new TextDecoder("utf-8").decode(bytes)];
  if (bytes[0] === 0xff && bytes[1] === 0xfe) texts.push(new TextDecoder("utf-16le").decode(bytes));
  if (bytes[0] === 0xfe && bytes[1] === 0xff) texts.push(new TextDecoder("utf-16be").decode(bytes));
  return texts;
}
