import assert from "node:assert/strict";
import {
  chooseVersion,
  decodeCredit,
  decodeJson,
  encodeCredit,
  encodeData,
  encodeJson,
  FrameReader,
  FrameType,
  MAX_PAYLOAD,
  ProtocolError,
  Stream,
} from "./protocol.ts";
import { parseEndpoint } from "./transport.ts";
import { parseArgs } from "./main.ts";
import { resolveUser } from "./user.ts";
import { SendWindow } from "./window.ts";

function streamOf(bytes: Uint8Array, chunk: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + chunk));
      at += chunk;
    },
  });
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

Deno.test("protocol: frames survive any split of the stream, byte for byte", async () => {
  const big = Uint8Array.from({ length: 200_000 }, (_, i) => i & 0xff);
  const bytes = concat(
    encodeJson(FrameType.EXEC, 7, { argv: ["echo"] }),
    encodeData(7, Stream.STDOUT, big),
    encodeCredit(7, Stream.INPUT, 4096),
  );
  for (const chunk of [1, 3, 9, 4096, bytes.length]) {
    const reader = new FrameReader(streamOf(bytes, chunk));
    const exec = await reader.next();
    assert.deepEqual([exec?.type, exec?.channel], [FrameType.EXEC, 7]);
    assert.deepEqual(decodeJson(exec!), { argv: ["echo"] });
    const data = await reader.next();
    assert.equal(data?.payload[0], Stream.STDOUT);
    assert.deepEqual(data?.payload.slice(1), big);
    assert.deepEqual(decodeCredit((await reader.next())!), { stream: 0, bytes: 4096 });
    assert.equal(await reader.next(), undefined);
  }
});

Deno.test("protocol: the wire format is the one agent/README.md specifies", () => {
  assert.deepEqual(
    [...encodeData(0x01020304, Stream.STDERR, new Uint8Array([0xaa, 0xbb]))],
    [0, 0, 0, 8, 0x05, 1, 2, 3, 4, 2, 0xaa, 0xbb],
  );
  assert.deepEqual([...encodeCredit(1, Stream.STDOUT, 65536)], [
    0,
    0,
    0,
    10,
    0x07,
    0,
    0,
    0,
    1,
    1,
    0,
    1,
    0,
    0,
  ]);
});

Deno.test("protocol: a truncated frame and a bad length are framing errors", async () => {
  const frame = encodeJson(FrameType.PING, 0, {});
  await assert.rejects(
    () => new FrameReader(streamOf(frame.slice(0, frame.length - 1), 4)).next(),
    (error: unknown) =>
      error instanceof ProtocolError && /ended inside a frame/.test(error.message),
  );
  const huge = new Uint8Array(9);
  new DataView(huge.buffer).setUint32(0, MAX_PAYLOAD + 6);
  await assert.rejects(() => new FrameReader(streamOf(huge, 9)).next(), /bad frame length/);
  await assert.rejects(
    () => new FrameReader(streamOf(new Uint8Array(9), 9)).next(),
    /bad frame length 0/,
  );
});

Deno.test("protocol: the highest common version is chosen", () => {
  assert.equal(chooseVersion([1, 2, 3], [2, 3, 4]), 3);
  assert.equal(chooseVersion([1], [2]), undefined);
});

Deno.test("window: acquire waits for a grant and never exceeds the credit", async () => {
  const window = new SendWindow(10);
  assert.equal(await window.acquire(4), 4);
  assert.equal(await window.acquire(100), 6);
  let got = 0;
  const waiting = window.acquire(50).then((n) => got = n);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(got, 0, "acquire did not wait for credit");
  window.grant(30);
  await waiting;
  assert.equal(got, 30);
  const pending = window.acquire(1);
  window.close(new Error("gone"));
  await assert.rejects(pending, /gone/);
});

Deno.test("agent arguments and endpoints: bad ones get one line naming them", () => {
  assert.deepEqual(parseEndpoint("vsock:1024"), { kind: "vsock", port: 1024 });
  assert.deepEqual(parseEndpoint("unix:/run/a.sock"), { kind: "unix", path: "/run/a.sock" });
  assert.deepEqual(parseEndpoint("stdio"), { kind: "stdio" });
  assert.throws(
    () => parseEndpoint("tcp:80"),
    /--listen=tcp:80 is not an endpoint; use vsock:PORT/,
  );
  assert.throws(() => parseEndpoint("unix:relative"), /not an endpoint/);
  assert.deepEqual(parseArgs(["--listen=vsock:1", "--protocol-versions=1,2"]), {
    listen: "vsock:1",
    versions: [1, 2],
  });
  assert.throws(() => parseArgs([]), /missing --listen=ENDPOINT/);
  assert.throws(() => parseArgs(["--listen=vsock:1", "--bogus"]), /unknown argument --bogus/);
});

Deno.test("user: names, uids and uid:gid resolve from /etc/passwd", () => {
  const passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
  assert.deepEqual(resolveUser("nobody", passwd), { uid: 65534, gid: 65534 });
  assert.deepEqual(resolveUser("0", passwd), { uid: 0, gid: 0 });
  assert.deepEqual(resolveUser("1000:50", passwd), { uid: 1000, gid: 50 });
  assert.deepEqual(resolveUser("1000", passwd), { uid: 1000, gid: 1000 });
  assert.throws(() => resolveUser("ghost", passwd), /user "ghost" does not exist/);
});
