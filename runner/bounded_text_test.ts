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
