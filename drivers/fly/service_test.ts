import assert from "node:assert/strict";
import type { FlyApi, FlyLogLine } from "./api.ts";
import { exchangeConnection, LogFollower, NetProbe } from "./service.ts";
import type { VolumeHelper } from "./volumes.ts";

function line(message: string, extra: Partial<FlyLogLine> = {}): FlyLogLine {
  return { message, level: "info", instance: "m1", provider: "app", ...extra };
}

/** An API whose logs endpoint serves `pages` one after the other, then empty pages. */
function logsApi(pages: FlyLogLine[][]): { api: FlyApi; tokens: string[] } {
  const tokens: string[] = [];
  let served = 0;
  const api = {
    logs: (_app: string, _instance: string, token: string) => {
      tokens.push(token);
      const lines = pages[served] ?? [];
      if (served < pages.length) served++;
      return Promise.resolve({ lines, nextToken: String(served) });
    },
  } as unknown as FlyApi;
  return { api, tokens };
}

Deno.test("fly service logs: the machine's own app lines in order, error/warning as stderr, others dropped", async () => {
  const { api, tokens } = logsApi([
    [line("one"), line("boom", { level: "error" }), line("other machine", { instance: "m2" })],
    [line("runner says", { provider: "runner" }), line("two", { level: "warning" })],
  ]);
  const got: string[] = [];
  let stopped = false;
  const follower = new LogFollower(api, "app", "m1", (stream, chunk) => {
    got.push(`${stream}:${new TextDecoder().decode(chunk)}`);
  }, () => stopped);
  await follower.refresh();
  stopped = true;
  await follower.done;
  assert.deepEqual(got, ["stdout:one\n", "stderr:boom\n", "stderr:two\n"]);
  assert.deepEqual(tokens.slice(0, 3), ["", "1", "2"], "each page continues from the last token");
});

Deno.test("fly service logs: after the stop every page left is read until an empty one", async () => {
  const late = logsApi([[line("a")], [line("b")]]);
  const lines: string[] = [];
  await new LogFollower(
    late.api,
    "app",
    "m1",
    (_s, chunk) => lines.push(new TextDecoder().decode(chunk)),
    () => true,
  ).done;
  assert.deepEqual(lines, ["a\n", "b\n"]);
  assert.deepEqual(late.tokens, ["", "1", "2"]);
});

Deno.test("fly probe: addresses and the probe's bytes reach the helper as arguments, never as shell text", async () => {
  const calls: (readonly string[])[] = [];
  const helper = {
    run: (command: readonly string[]) => {
      calls.push(command);
      return Promise.resolve(calls.length === 1 ? "" : btoa("HTTP/1.0 200 OK\r\n\r\n"));
    },
  } as unknown as VolumeHelper;
  const probe = new NetProbe(() => Promise.resolve(helper));
  const connection = await probe.dial("fdaa::3", 8080, new AbortController().signal);
  const hostile = "GET /$(touch /tmp/pwned)`id`;'\" HTTP/1.0\r\n\r\n";
  const writer = connection.writable.getWriter();
  await writer.write(new TextEncoder().encode(hostile));
  writer.releaseLock();
  const reader = connection.readable.getReader();
  const { value } = await reader.read();
  assert.equal(new TextDecoder().decode(value), "HTTP/1.0 200 OK\r\n\r\n");
  assert.equal(calls.length, 2);
  for (const call of calls) {
    assert.deepEqual(call.slice(0, 2), ["sh", "-c"]);
    assert.ok(!call[2].includes("fdaa") && !call[2].includes("8080"), "the script is fixed");
    assert.deepEqual(call.slice(4, 6), ["fdaa::3", "8080"]);
  }
  assert.equal(calls[1][6], btoa(hostile), "the request goes base64-encoded as one argument");
  assert.ok(!calls.flat().some((arg) => arg.includes("touch /tmp/pwned")));
});

Deno.test("fly probe: a connection is one exchange of what was written before the first read", async () => {
  const requests: string[] = [];
  const connection = exchangeConnection((request) => {
    requests.push(new TextDecoder().decode(request));
    return Promise.resolve(new TextEncoder().encode("pong"));
  });
  const writer = connection.writable.getWriter();
  await writer.write(new TextEncoder().encode("pi"));
  await writer.write(new TextEncoder().encode("ng"));
  writer.releaseLock();
  const text = await new Response(connection.readable).text();
  assert.equal(text, "pong");
  assert.deepEqual(requests, ["ping"]);
  connection.close();
});
