import assert from "node:assert/strict";
import { QgaClient, QgaTimeoutError } from "./qga.ts";

/** A scripted agent on a Unix socket: `respond` gets each request line and writes replies. */
async function fakeAgent(
  respond: (request: Record<string, unknown> | "ff", write: (text: string) => void) => void,
): Promise<{ path: string; requests: unknown[]; close(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-qga-test-" });
  const path = `${dir}/qga.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const requests: unknown[] = [];
  const conns: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      (async () => {
        // Latin-1, so "\xff" is the single byte 0xFF the agent sends before a delimited reply.
        const write = (text: string) =>
          conn.write(Uint8Array.from(text, (c) => c.charCodeAt(0))).catch(() => {});
        let pending = "";
        const buffer = new Uint8Array(4096);
        while (true) {
          const count = await conn.read(buffer).catch(() => null);
          if (count === null) break;
          for (const byte of buffer.subarray(0, count)) {
            if (byte === 0xff) {
              requests.push("ff");
              respond("ff", write);
              continue;
            }
            if (byte !== 0x0a) {
              pending += String.fromCharCode(byte);
              continue;
            }
            const request = JSON.parse(pending);
            pending = "";
            requests.push(request);
            respond(request, write);
          }
        }
      })();
    }
  })();
  return {
    path,
    requests,
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // closed
        }
      }
      await serving.catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("qga: the handshake drains stale replies and 0xFF complaints, then confirms with guest-sync", async () => {
  let tries = 0;
  const agent = await fakeAgent((request, write) => {
    if (request === "ff") {
      write(
        '{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'\\uFFFD\'"}}\n',
      );
      return;
    }
    const id = (request.arguments as { id?: number } | undefined)?.id;
    if (request.execute === "guest-sync-delimited") {
      tries++;
      // The first try is answered late, after the second was sent (as a booting agent does).
      if (tries === 1) return;
      if (tries === 2) write('\xff{"return": 12345}\n'); // a stale id from an earlier connection
      write(`\xff{"return": ${id}}\n`);
    } else if (request.execute === "guest-sync") {
      write(`{"return": ${id}}\n`);
    } else if (request.execute === "guest-ping") {
      write('{"return": {}}\n');
    }
  });
  try {
    const client = await QgaClient.connect(agent.path, {
      deadline: Date.now() + 5000,
      tryMs: 100,
    });
    assert.deepEqual(await client.call("guest-ping", undefined, 1000), {});
    client.close();
    const kinds = agent.requests.map((r) => r === "ff" ? "ff" : (r as { execute: string }).execute);
    assert.deepEqual(kinds, [
      "ff",
      "guest-sync-delimited",
      "ff",
      "guest-sync-delimited",
      "guest-sync",
      "guest-ping",
    ]);
  } finally {
    await agent.close();
  }
});

Deno.test("qga: one request in flight; a timed-out one is never resent and its late reply is dropped", async () => {
  let slowReply: (() => void) | undefined;
  const agent = await fakeAgent((request, write) => {
    if (request === "ff") return;
    const id = (request.arguments as { id?: number } | undefined)?.id;
    if (request.execute === "guest-sync-delimited") write(`\xff{"return": ${id}}\n`);
    else if (request.execute === "guest-sync") write(`{"return": ${id}}\n`);
    else if (request.execute === "guest-exec") {
      // Answered only later: the client must not send anything else meanwhile.
      slowReply = () => write('{"return": {"pid": 41}}\n');
    } else if (request.execute === "guest-exec-status") {
      write(
        `{"return": {"exited": true, "signal": 9, "pid-was": ${
          (request.arguments as { pid: number }).pid
        }}}\n`,
      );
    }
  });
  try {
    const client = await QgaClient.connect(agent.path, { deadline: Date.now() + 5000 });
    const exec = client.exec({ path: "/bin/true", args: [], capture: false }, 200);
    const status = client.execStatus(7, 5000);
    await assert.rejects(exec, QgaTimeoutError);
    const sent = () =>
      agent.requests.filter((r) => r !== "ff").map((r) => (r as { execute: string }).execute);
    assert.deepEqual(sent().slice(-1), ["guest-exec"], "the status query went out too early");
    slowReply!();
    const result = await status;
    assert.equal(result.exited, true);
    assert.equal(result.signal, 9, "the late guest-exec reply was taken for the status query");
    assert.equal(sent().filter((name) => name === "guest-exec").length, 1, "guest-exec resent");
    client.close();
  } finally {
    await agent.close();
  }
});
