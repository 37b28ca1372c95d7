/**
 * The forms a secret takes in output besides itself: what tools print on their own when
 * they URL-encode it, JSON-escape it or base64-encode it (alone, or inside a larger
 * string such as `user:SECRET` in an `Authorization: Basic` header).
 *
 * @module
 */

/**
 * Secrets shorter than this are refused unless `--allow-short-secrets`: masked, they would
 * hide ordinary text (a 1-character secret masks that letter everywhere).
 */
export const MIN_SECRET_LENGTH = 6;

const encoder = new TextEncoder();

function base64Bytes(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** The standard base64 of `text`'s UTF-8 bytes. */
export function base64(text: string): string {
  return base64Bytes(encoder.encode(text));
}

/** `text` in the URL-safe base64 alphabet (`-` and `_` instead of `+` and `/`). */
function urlAlphabet(text: string): string {
  return text.replace(/\+/g, "-").replace(/\//g, "_");
}

/**
 * The part of the base64 text that only `value`'s bytes decide, when `value` starts 0, 1
 * or 2 bytes into the encoded data: one form per alignment. The characters at either
 * edge, which mix in bits of the surrounding bytes, are left out.
 */
export function base64Alignments(value: string): string[] {
  const bytes = encoder.encode(value);
  const forms: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    // Zero bytes around the value: the characters kept do not depend on them.
    const data = new Uint8Array(offset + bytes.length + 2);
    data.set(bytes, offset);
    const encoded = base64Bytes(data);
    const start = Math.ceil((offset * 8) / 6);
    const end = Math.floor(((offset + bytes.length) * 8) / 6);
    if (end > start) forms.push(encoded.slice(start, end));
  }
  return forms;
}

function jsonForms(value: string): string[] {
  const escaped = JSON.stringify(value).slice(1, -1);
  // Python's json.dumps and others escape every non-ASCII character; PHP escapes "/".
  const ascii = escaped.replace(
    /[\u007f-\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return [escaped, ascii, escaped.replace(/\//g, "\\/"), ascii.replace(/\//g, "\\/")];
}

function urlForms(value: string): string[] {
  const component = encodeURIComponent(value);
  return [
    component,
    component.replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase()),
    // Form encoding: a space is "+".
    component.replace(/%20/g, "+"),
    new URLSearchParams([["", value]]).toString().slice(1),
  ];
}

/**
 * Every form of `value` to mask: the value, its URL-encoded and JSON-escaped forms, and
 * its base64 (and base64url) forms: whole, with a trailing newline (`echo "$S" | base64`),
 * and at the three alignments inside a larger encoded string. A value shorter than
 * {@link MIN_SECRET_LENGTH} gets only itself and its whole base64 forms (the other forms
 * of so short a value would match unrelated text).
 */
export function secretForms(value: string): string[] {
  if (value === "") return [];
  const whole = [base64(value), base64(value + "\n")];
  if (value.length < MIN_SECRET_LENGTH) return [value, ...whole];
  const encoded = [...whole, ...base64Alignments(value)];
  return [
    value,
    ...urlForms(value),
    ...jsonForms(value),
    ...encoded,
    ...encoded.map(urlAlphabet),
    ...whole.map((form) => urlAlphabet(form).replace(/=+$/, "")),
  ];
}
