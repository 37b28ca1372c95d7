import assert from "node:assert/strict";
import type { ExitStatus } from "../drivers/contract.ts";
import { dialLocal } from "../drivers/native/service.ts";
import { describeProbe, NotReadyError, probeOnce, waitReady } from "./readiness.ts";

const never = new Promise<ExitStatus>(() => {});
const handle = {
  dial: dialLocal,
  exec: () => Promise.resolve({ code: 1 }),
};

/** An HTTP server on 127.0.0.1 answering with the statuses in turn (the last one repeats). */
function server(statuses: number[]): { port: number; hits: () => number; close(): void } {
  let hits = 0;
  const listener = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    const status = statuses[Math.min(hits++, statuses.length - 1)];
    return new Response("x", { status });
  });
  return {
    port: listener.addr.port,
    hits: () => hits,
    close: () => void listener.shutdown(),
  };
}

Deno.test("readiness: an http probe passes only on 2xx/3xx, retried every interval", async () => {
  const web = server([503, 503, 200]);
  try {
    await waitReady(handle, {
      probe: { http: `http://localhost:${web.port}/health` },
      timeoutMs: 5000,
      intervalMs: 50,
      exited: never,
      signal: new AbortController().signal,
    });
    assert.equal(web.hits(), 3);
  } finally {
    web.close();
  }
});

Deno.test("readiness: a server that accepts but never answers cannot outlast the timeout", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  const started = performance.now();
  try {
    const error = await waitReady(handle, {
      probe: { http: `http://localhost:${listener.addr.port}/` },
      timeoutMs: 800,
      intervalMs: 100,
      exited: never,
      signal: new AbortController().signal,
    }).then(() => undefined, (e) => e);
    const took = performance.now() - started;
    assert.ok(error instanceof NotReadyError && error.reason === "timeout", String(error));
    assert.match(error.message, /last attempt: no answer in time/);
    assert.ok(took < 2000, `gave up after ${Math.round(took)} ms`);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of held) conn.close();
  }
});

Deno.test("readiness: the run's cancellation ends the wait at once; an exit ends it with the code", async () => {
  const controller = new AbortController();
  setTimeout(() => controller.abort("stop"), 100);
  const started = performance.now();
  const cancelled = await waitReady(handle, {
    probe: { exec: ["pg_isready"] },
    timeoutMs: 60_000,
    intervalMs: 50,
    exited: never,
    signal: controller.signal,
  }).then(() => undefined, (e) => e);
  assert.ok(cancelled instanceof NotReadyError && cancelled.reason === "cancelled");
  assert.match(cancelled.message, /cancelled while waiting for exec pg_isready/);
  assert.ok(performance.now() - started < 1000);
  const exited = await waitReady(handle, {
    probe: { tcp: 1 },
    timeoutMs: 60_000,
    intervalMs: 50,
    exited: new Promise((resolve) => setTimeout(() => resolve({ code: 7 }), 100)),
    signal: new AbortController().signal,
  }).then(() => undefined, (e) => e);
  assert.ok(exited instanceof NotReadyError && exited.reason === "exited");
  assert.match(exited.message, /exited with code 7 before tcp port 1 passed/);
});

Deno.test("readiness: probes are described as written", () => {
  assert.equal(describeProbe({ tcp: 5432 }), "tcp port 5432");
  assert.equal(describeProbe({ http: "http://localhost:8080/h" }), "http http://localhost:8080/h");
  assert.equal(describeProbe({ exec: ["pg_isready", "-q"] }), "exec pg_isready -q");
});

Deno.test("readiness: an http probe goes to the service's own address, whatever host the URL names", async () => {
  const dialed: number[] = [];
  let request = "";
  const fake = {
    dial: (port: number) => {
      dialed.push(port);
      const answer = new TextEncoder().encode("HTTP/1.1 204 No Content\r\n\r\n");
      return Promise.resolve({
        readable: new ReadableStream<Uint8Array>({
          start: (controller) => {
            controller.enqueue(answer);
            controller.close();
          },
        }),
        writable: new WritableStream<Uint8Array>({
          write: (chunk) => void (request += new TextDecoder().decode(chunk)),
        }),
        close: () => {},
      });
    },
    exec: () => Promise.resolve({ code: 1 }),
  };
  await probeOnce(fake, { http: "http://db:5433/ready?x=1" }, AbortSignal.timeout(1000));
  assert.deepEqual(dialed, [5433], "the driver dials the service's port; the host is never used");
  assert.match(request, /^GET \/ready\?x=1 HTTP\/1\.0\r\nHost: db:5433\r\n/);
});
