import assert from "node:assert/strict";
import { imageReferenceError, parseImageReference } from "./image_ref.ts";

const DIGEST = "sha256:" + "a1".repeat(32);

Deno.test("image references: the Docker grammar's valid forms parse into name, tag and digest", () => {
  assert.deepEqual(parseImageReference("busybox"), { name: "busybox" });
  assert.deepEqual(parseImageReference("busybox:1.36"), { name: "busybox", tag: "1.36" });
  assert.deepEqual(parseImageReference("library/busybox:latest"), {
    name: "library/busybox",
    tag: "latest",
  });
  assert.deepEqual(parseImageReference("ghcr.io/org/app:v1.2_rc-3"), {
    name: "ghcr.io/org/app",
    tag: "v1.2_rc-3",
  });
  assert.deepEqual(parseImageReference("localhost:5000/team/app"), {
    name: "localhost:5000/team/app",
  });
  assert.deepEqual(parseImageReference(`busybox@${DIGEST}`), { name: "busybox", digest: DIGEST });
  assert.deepEqual(parseImageReference(`busybox:1.36@${DIGEST}`), {
    name: "busybox",
    tag: "1.36",
    digest: DIGEST,
  });
  for (
    const valid of [
      "pocketci-test/entrypoint:latest",
      "my_app",
      "a__b",
      "a---b",
      "a.b",
      "Registry.Example.com/org/app", // a domain may hold uppercase letters
      "[::1]:5000/app",
      "192.168.1.2:5000/app:Tag", // a tag may hold uppercase letters
      "busybox:" + "t".repeat(128),
      "node:22",
    ]
  ) {
    assert.equal(imageReferenceError(valid), undefined, valid);
  }
});

Deno.test("image references: what the engine cannot parse is a one-line error naming the image and the form", () => {
  const invalid: [string, RegExp][] = [
    ["/etc/passwd", /starts with \//],
    ["busybox; rm", /whitespace/],
    ["busybox;rm", /^image "busybox;rm" is not a valid image reference: use /],
    ["", /it is empty/],
    [" busybox", /whitespace/],
    ["busybox\n", /whitespace/],
    ["busy\u0000box", /control characters/],
    ["BusyBox", /repository name must be lowercase/],
    ["ghcr.io/Org/app", /repository name must be lowercase/],
    ["a//b", /not a valid image reference/],
    ["busybox:", /not a valid image reference/],
    ["busybox:-tag", /not a valid image reference/],
    ["busybox:" + "t".repeat(129), /not a valid image reference/],
    ["busybox@sha256:abc", /digest must be sha256: and 64 lowercase hex digits/],
    ["busybox@md5:" + "a".repeat(32), /digest must be sha256/],
    ["-busybox", /not a valid image reference/],
    ["busybox-", /not a valid image reference/],
    ["a/" + "b".repeat(255), /not a valid image reference/],
    ["../../x", /not a valid image reference/],
    ["http://example.com/app", /not a valid image reference/],
  ];
  for (const [image, pattern] of invalid) {
    const error = imageReferenceError(image);
    assert.ok(error !== undefined, `accepted ${JSON.stringify(image)}`);
    assert.match(error, pattern, image);
    assert.ok(!error.includes("\n"), `one line for ${JSON.stringify(image)}`);
    assert.ok(error.includes(JSON.stringify(image).slice(0, 100)), "names the image");
    assert.match(error, /use \[REGISTRY\[:PORT\]\/\]NAME\[:TAG\]\[@sha256:DIGEST\]/);
  }
  assert.match(String(imageReferenceError(42)), /must be a string/);
});

Deno.test("imageReferenceError masks the image before cutting it, so a cut never shows part of a secret", () => {
  const secret = "Img-Secret-Value-42";
  const mask = (text: string) => text.replaceAll(secret, "***");
  for (let at = 100; at <= 125; at++) {
    const image = "a".repeat(at) + secret + " x";
    const error = String(imageReferenceError(image, mask));
    for (let length = 3; length <= secret.length; length++) {
      assert.ok(!error.includes(secret.slice(0, length)), `${at}: ${error}`);
    }
  }
});
