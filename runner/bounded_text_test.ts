import assert from "node:assert/strict";
import { BoundedText } from "./bounded_text.ts";

Deno.test("bounded text keeps everything below the limit", () => {
  const text = new BoundedText(10);
  text.append("hello ");
  text.append("world");
  assert.equal(text.toString(), "hello world");
  assert.equal(text.truncated, false);
});

Deno.test("bounded text keeps head and tail and marks the truncation", () => {
  const text = new BoundedText(5);
  for (let i = 0; i < 1000; i++) text.append("0123456789");
  const kept = text.toString();
  assert.ok(kept.startsWith("01234\n[... pocketci: "));
  assert.ok(kept.endsWith("]\n56789"));
  assert.match(kept, /9990 characters truncated/);
  assert.equal(text.truncated, true);
});

Deno.test("bounded text returns the last lines", () => {
  const text = new BoundedText(100);
  text.append("a\nb\nc\n");
  assert.deepEqual(text.lastLines(2), ["b", "c"]);
  assert.deepEqual(new BoundedText().lastLines(3), []);
});

/** What BoundedText must return for everything appended (`full`) with `keep`. */
function expected(full: string, keep: number): string {
  let headLength = Math.min(keep, full.length);
  const code = full.charCodeAt(headLength - 1);
  if (headLength < full.length && code >= 0xd800 && code <= 0xdbff) headLength--;
  const head = full.slice(0, headLength);
  const rest = full.slice(headLength).toWellFormed();
  if (rest.length <= keep) return head + rest;
  const dropped = rest.length - keep;
  return `${head}\n[... pocketci: ${dropped} characters truncated ...]\n${rest.slice(-keep)}`;
}

Deno.test("bounded text keeps exactly head and tail of mixed-width text in any chunking", () => {
  // One-, two-, three- and four-byte UTF-8, a BOM and a lone surrogate.
  const alphabet = ["a", "\n", "é", "€", "\ufeff", "😀", "\ud800", "x"];
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return (seed >>> 8) % n;
  };
  for (const keep of [1, 5, 100, 1500, 5000]) {
    for (let round = 0; round < 20; round++) {
      const text = new BoundedText(keep);
      let full = "";
      const appends = 1 + random(60);
      for (let i = 0; i < appends; i++) {
        let piece = "";
        const length = random(4) === 0 ? random(3 * keep + 10) : random(40);
        while (piece.length < length) piece += alphabet[random(alphabet.length)];
        text.append(piece);
        full += piece;
      }
      assert.equal(text.toString(), expected(full, keep), `keep ${keep}, round ${round}`);
      assert.equal(text.truncated, text.toString().includes("characters truncated ..."));
    }
  }
});

Deno.test("bounded text keeps the last characters of 50 MB appended in pieces", () => {
  const text = new BoundedText(1000);
  const piece = "0123456789".repeat(3277);
  let appended = 0;
  for (let i = 0; i < 1600; i++) {
    text.append(piece + `<${i}>`);
    appended += piece.length + `<${i}>`.length;
  }
  const kept = text.toString();
  assert.ok(kept.startsWith("0123456789".repeat(100) + "\n[... pocketci: "));
  assert.ok(kept.endsWith("0123456789<1599>"));
  assert.match(kept, new RegExp(`${appended - 2000} characters truncated`));
  assert.equal(kept.length - kept.indexOf("...]\n") - 5, 1000);
});
