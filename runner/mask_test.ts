import assert from "node:assert/strict";
import { Masker, maskPatterns } from "./mask.ts";

const encoder = new TextEncoder();

Deno.test("mask: value, base64 form and each line of a multi-line value", () => {
  const masker = new Masker(["hunter2-secret", "line-one\nline-two", ""]);
  assert.equal(masker.mask("pw=hunter2-secret!"), "pw=***!");
  assert.equal(masker.mask(`b64 ${btoa("hunter2-secret")}`), "b64 ***");
  assert.equal(masker.mask("got line-two alone"), "got *** alone");
  assert.equal(masker.mask("line-one\nline-two"), "***");
  assert.equal(masker.mask("nothing here"), "nothing here");
});

Deno.test('mask: the base64 of the value with a trailing newline (`echo "$T" | base64`)', () => {
  const masker = new Masker(["hunter2-secret"]);
  assert.equal(masker.mask(`b64 ${btoa("hunter2-secret\n")}`), "b64 ***");
});

Deno.test("mask: short lines of a multi-line secret are not masked on their own", () => {
  assert.deepEqual(maskPatterns(["a\nlonger-line"]).includes("a"), false);
});

Deno.test("mask: values split across chunks at every position are masked", () => {
  const secret = "sp1it-acr0ss-chunks";
  const text = `before ${secret} after ${secret}`;
  for (let cut = 0; cut <= text.length; cut++) {
    for (let cut2 = cut; cut2 <= text.length; cut2 += 3) {
      const stream = new Masker([secret]).stream();
      const out = stream.push(encoder.encode(text.slice(0, cut))) +
        stream.push(encoder.encode(text.slice(cut, cut2))) +
        stream.push(encoder.encode(text.slice(cut2))) + stream.flush();
      assert.equal(out, "before *** after ***", `cuts at ${cut}/${cut2}`);
    }
  }
});

Deno.test("mask: text that cannot start a secret is not held back", () => {
  const stream = new Masker(["zzz-secret"]).stream();
  assert.equal(stream.push(encoder.encode("hello\n")), "hello\n");
  assert.equal(stream.push(encoder.encode("partial zz")), "partial ");
  assert.equal(stream.push(encoder.encode("q")), "zzq");
});

Deno.test("mask: multi-byte characters split across chunks survive", () => {
  const stream = new Masker([]).stream();
  const bytes = encoder.encode("héllo ✓");
  const out = stream.push(bytes.slice(0, 2)) + stream.push(bytes.slice(2, 8)) +
    stream.push(bytes.slice(8)) + stream.flush();
  assert.equal(out, "héllo ✓");
});

Deno.test("mask: maskDeep masks nested strings", () => {
  const masker = new Masker(["deep-secret"]);
  assert.deepEqual(masker.maskDeep({ a: ["x deep-secret"], b: { c: "deep-secret" }, n: 1 }), {
    a: ["x ***"],
    b: { c: "***" },
    n: 1,
  });
});
