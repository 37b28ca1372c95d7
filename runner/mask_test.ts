import assert from "node:assert/strict";
import { MASK, maskedLine, Masker, maskPatterns, MAX_LINE, trieSource } from "./mask.ts";

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

Deno.test("mask: URL-encoded forms (encodeURIComponent, form encoding with +, lowercase escapes)", () => {
  const secret = "p@ss w/rd&x=1!";
  const masker = new Masker([secret]);
  const forms = [
    encodeURIComponent(secret),
    encodeURIComponent(secret).replace(/%20/g, "+"),
    new URLSearchParams({ p: secret }).toString().slice(2),
    encodeURIComponent(secret).toLowerCase(),
  ];
  for (const form of forms) {
    assert.notEqual(form, secret);
    assert.equal(masker.mask(`GET /?pw=${form}&next=1`), "GET /?pw=***&next=1", form);
  }
});

Deno.test("mask: JSON-escaped forms of values with quotes, backslashes, newlines and non-ASCII", () => {
  const secret = 'q"uo\\te\nnext-line é✓/';
  const masker = new Masker([secret]);
  const escaped = JSON.stringify(secret).slice(1, -1);
  const ascii = escaped.replace(
    /[\u007f-\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  for (const form of [escaped, ascii, escaped.replace(/\//g, "\\/")]) {
    assert.notEqual(form, secret);
    assert.equal(masker.mask(`{"password":"${form}"}`), '{"password":"***"}', form);
  }
  assert.equal(masker.mask(JSON.stringify({ secret })), '{"secret":"***"}');
});

/** base64 (or base64url) of a string's UTF-8 bytes. */
function b64(text: string, url = false): string {
  let binary = "";
  for (const byte of encoder.encode(text)) binary += String.fromCharCode(byte);
  const encoded = btoa(binary);
  return url ? encoded.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "") : encoded;
}

Deno.test("mask: base64 of a larger string holding the secret, at every alignment (curl -u)", () => {
  const secret = "Tr0ub4dor&3-horse";
  const masker = new Masker([secret]);
  for (const url of [false, true]) {
    for (let before = 0; before <= 7; before++) {
      for (let after = 0; after <= 4; after++) {
        const prefix = "user:xyz".slice(0, before);
        const encoded = b64(prefix + secret + "@tail".slice(0, after), url);
        const masked = masker.mask(`Authorization: Basic ${encoded}`);
        const [head, tail, ...more] = masked.slice("Authorization: Basic ".length).split(MASK);
        const what = `url=${url} before=${before} after=${after}`;
        assert.equal(more.length, 0, what);
        assert.ok(tail !== undefined, `not masked: ${what}`);
        // What stays visible is only what the surrounding bytes share with the secret's
        // edges: at most one character of each edge group.
        assert.ok(encoded.startsWith(head) && head.length <= Math.ceil((before * 8) / 6), what);
        const secretEnd = Math.floor(((before + encoder.encode(secret).length) * 8) / 6);
        assert.ok(encoded.endsWith(tail) && tail.length <= encoded.length - secretEnd + 1, what);
      }
    }
  }
  // `user:` stays readable; the secret does not.
  assert.match(masker.mask(`Basic ${b64(`user:${secret}`)}`), /^Basic dXNlcj.\*\*\*.{0,4}$/);
});

Deno.test("mask: short values keep today's forms only (value and whole base64)", () => {
  assert.deepEqual(maskPatterns(["ab"]).sort(), ["ab", btoa("ab"), btoa("ab\n")].sort());
  const long = maskPatterns(["abcdef"]);
  assert.ok(long.includes(btoa("abcdef")) && long.length > 3);
});

Deno.test("mask: PocketCI's own paths and IDs are never masked inside", () => {
  const secret = "s3cr3t-value";
  const stateDir = `/tmp/${secret}/state`;
  const masker = new Masker([secret], { protect: [stateDir, `run-${secret}`] });
  assert.equal(
    masker.mask(`logs: ${stateDir}/runs/x, run run-${secret}, token ${secret}`),
    `logs: ${stateDir}/runs/x, run run-${secret}, token ***`,
  );
  assert.deepEqual(masker.maskDeep({ logDir: `${stateDir}/logs`, error: `${secret}!` }), {
    logDir: `${stateDir}/logs`,
    error: "***!",
  });
  // A secret that only overlaps a protected string is still masked.
  assert.equal(
    new Masker(["state-SECRET"], { protect: ["/tmp/state"] }).mask("/tmp/state-SECRET"),
    "/tmp/***",
  );
});

Deno.test("maskedLine masks first, then cuts: a secret straddling the cut never shows in part", () => {
  const secret = "Qw3rty-Secret-9z";
  const masker = new Masker([secret]);
  for (let cut = 0; cut <= secret.length + 1; cut++) {
    const message = "a".repeat(MAX_LINE - cut) + secret + " and more\nsecond line " + secret;
    const line = maskedLine(masker, new Error(message));
    for (let length = 3; length <= secret.length; length++) {
      assert.ok(!line.includes(secret.slice(0, length)), `cut ${cut}: ${line.slice(-30)}`);
    }
    assert.ok(!line.includes("second line"));
    assert.ok(line.length <= MAX_LINE + 3);
  }
});

Deno.test("trieSource matches as the longest-first alternation does (prefixes, shared stems, specials)", () => {
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  let seed = 7;
  const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
  const alphabet = "ab(.*\\";
  const word = (length: number) =>
    Array.from({ length }, () => alphabet[random(alphabet.length)]).join("");
  for (let round = 0; round < 300; round++) {
    const patterns = [...new Set(Array.from({ length: 1 + random(6) }, () => word(1 + random(5))))]
      .sort((a, b) => b.length - a.length);
    const text = word(40);
    const plain = new RegExp(patterns.map(escape).join("|"), "g");
    const trie = new RegExp(trieSource(patterns), "g");
    assert.equal(text.replace(trie, "#"), text.replace(plain, "#"), JSON.stringify(patterns));
  }
  assert.equal(new Masker(["abcdef", "abcdefgh"]).mask("xabcdefghy abcdefz"), "x***y ***z");
});
