import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DriverError } from "../contract.ts";
import { checksumFor, ensureImage, type ImageSource } from "./image.ts";

const IMAGE = Uint8Array.from({ length: 3_000_000 }, (_, i) => (i * 31 + (i >> 9)) & 0xff);
const SHA = createHash("sha256").update(IMAGE).digest("hex");

interface ServerOptions {
  /** The checksum SHA256SUMS lists. */
  readonly sha?: string;
  /** Serve only this many bytes of the image on the first request, then close. */
  readonly cutFirstAt?: number;
  /** Whether Range requests are honoured. */
  readonly ranges?: boolean;
}

/** A local HTTP server publishing the image and its SHA256SUMS. */
function serve(options: ServerOptions = {}) {
  const requests: { path: string; range: string | null }[] = [];
  let imageRequests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    const range = request.headers.get("range");
    requests.push({ path, range });
    if (path === "/SHA256SUMS") {
      return new Response(`${"0".repeat(64)} *other.img\n${options.sha ?? SHA} *test.img\n`);
    }
    if (path !== "/test.img") return new Response("no", { status: 404 });
    imageRequests++;
    if (imageRequests === 1 && options.cutFirstAt !== undefined) {
      // Sends the first part, then fails the body mid-stream (a dropped connection).
      const part = IMAGE.slice(0, options.cutFirstAt);
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(part);
          // Ends short of content-length: the connection drops mid-body.
          setTimeout(() => controller.close(), 20);
        },
      });
      return new Response(body, { headers: { "content-length": String(IMAGE.length) } });
    }
    const match = range && options.ranges !== false ? /^bytes=(\d+)-$/.exec(range) : null;
    if (match) {
      const start = Number(match[1]);
      return new Response(IMAGE.slice(start), {
        status: 206,
        headers: {
          "content-length": String(IMAGE.length - start),
          "content-range": `bytes ${start}-${IMAGE.length - 1}/${IMAGE.length}`,
        },
      });
    }
    return new Response(IMAGE, { headers: { "content-length": String(IMAGE.length) } });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const source: ImageSource = {
    url: `${base}/test.img`,
    sumsUrl: `${base}/SHA256SUMS`,
    fileName: "test.img",
  };
  return { source, requests, close: () => server.shutdown() };
}

async function withCache(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-image-test-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("image: downloads with progress lines, verifies SHA256SUMS, then reuses the cached file", async () => {
  const server = serve();
  try {
    await withCache(async (dir) => {
      const lines: string[] = [];
      const path = await ensureImage(dir, server.source, { progress: (line) => lines.push(line) });
      assert.equal(path, `${dir}/test.img`);
      assert.deepEqual(await Deno.readFile(path), IMAGE);
      assert.match(lines[0], /downloading http:\/\/127\.0\.0\.1:\d+\/test\.img/);
      assert.ok(
        lines.some((line) => /test\.img \d+% \([\d.]+ MB of 3\.0 MB\)/.test(line)),
        lines.join("\n"),
      );
      assert.match(lines.at(-1)!, /verified and cached/);
      const before = server.requests.length;
      assert.equal(await ensureImage(dir, server.source, { progress: () => {} }), path);
      assert.equal(server.requests.length, before, "a cached image was fetched again");
    });
  } finally {
    await server.close();
  }
});

Deno.test("image: a checksum mismatch deletes the download and says so in one line", async () => {
  const server = serve({ sha: "ab".repeat(32) });
  try {
    await withCache(async (dir) => {
      await assert.rejects(
        () => ensureImage(dir, server.source, { progress: () => {} }),
        (error: unknown) =>
          error instanceof DriverError && /does not match SHA256SUMS/.test(error.message) &&
          !error.message.includes("\n"),
      );
      assert.deepEqual(await Array.fromAsync(Deno.readDir(dir), (entry) => entry.name), []);
    });
  } finally {
    await server.close();
  }
});

Deno.test("image: an interrupted download resumes with a range request", async () => {
  const server = serve({ cutFirstAt: 1_000_000 });
  try {
    await withCache(async (dir) => {
      await assert.rejects(() => ensureImage(dir, server.source, { progress: () => {} }));
      const partial = (await Deno.stat(`${dir}/test.img.part`)).size;
      assert.ok(partial > 0 && partial < IMAGE.length, `kept ${partial} bytes`);
      const lines: string[] = [];
      const path = await ensureImage(dir, server.source, { progress: (line) => lines.push(line) });
      assert.deepEqual(await Deno.readFile(path), IMAGE);
      assert.equal(server.requests.at(-1)?.range, `bytes=${partial}-`);
      assert.match(lines[0], /resuming at/);
    });
  } finally {
    await server.close();
  }
});

Deno.test("image: a server ignoring ranges restarts the download from the beginning", async () => {
  const server = serve({ cutFirstAt: 1_000_000, ranges: false });
  try {
    await withCache(async (dir) => {
      await assert.rejects(() => ensureImage(dir, server.source, { progress: () => {} }));
      const path = await ensureImage(dir, server.source, { progress: () => {} });
      assert.deepEqual(await Deno.readFile(path), IMAGE, "the partial file was appended to");
    });
  } finally {
    await server.close();
  }
});

Deno.test("image: an unreachable server is one line naming image=", async () => {
  await withCache(async (dir) => {
    const source: ImageSource = {
      url: "http://127.0.0.1:9/test.img",
      sumsUrl: "http://127.0.0.1:9/SHA256SUMS",
      fileName: "test.img",
    };
    await assert.rejects(
      () => ensureImage(dir, source, { progress: () => {} }),
      (error: unknown) =>
        error instanceof DriverError && error.code === "unavailable" &&
        /set image= to a local qcow2 image/.test(error.message) && !error.message.includes("\n"),
    );
  });
});

Deno.test("image: checksumFor reads both SHA256SUMS forms and names a missing file", () => {
  const sums = `${"a".repeat(64)} *x.img\n${"B".repeat(64)}  y.img\n`;
  assert.equal(checksumFor(sums, "x.img"), "a".repeat(64));
  assert.equal(checksumFor(sums, "y.img"), "b".repeat(64));
  assert.throws(() => checksumFor(sums, "z.img"), /SHA256SUMS does not list z\.img/);
});
