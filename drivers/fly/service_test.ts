import assert from "node:assert/strict";
import type { FlyApi, FlyLogLine } from "./api.ts";
import { exchangeConnection, isPlatformLine, LogFollower, NetProbe } from "./service.ts";
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

Deno.test("fly service logs: after the stop, pages are read until the log stays quiet", async () => {
  const late = logsApi([[line("a")], [], [line("b")]]);
  const lines: string[] = [];
  await new LogFollower(
    late.api,
    "app",
    "m1",
    (_s, chunk) => lines.push(new TextDecoder().decode(chunk)),
    () => true,
  ).done;
  assert.deepEqual(lines, ["a\n", "b\n"], "a line after an empty page was lost");
  assert.deepEqual(late.tokens.slice(0, 4), ["", "1", "2", "3"]);
});

Deno.test("fly service logs: refresh() resolves after one fetch even while the service keeps printing", async () => {
  let n = 0;
  const api = {
    logs: (_app: string, _instance: string, _token: string) =>
      Promise.resolve({ lines: [line(`line ${++n}`)], nextToken: String(n) }),
  } as unknown as FlyApi;
  let stopped = false;
  const follower = new LogFollower(api, "app", "m1", () => {}, () => stopped);
  const before = n;
  await follower.refresh();
  assert.ok(n > before, "no page was fetched");
  // A refresh given an aborted signal does not wait at all.
  await follower.refresh(AbortSignal.abort());
  // A machine that keeps printing after its stop is drained for at most 10 s, then done.
  stopped = true;
  await follower.done;
});

Deno.test("fly service logs: a logs API that keeps failing is one warning, never a rejection", async () => {
  let calls = 0;
  const api = {
    logs: () => {
      calls++;
      return Promise.reject(new Error("401 unauthorized"));
    },
  } as unknown as FlyApi;
  const warnings: string[] = [];
  let stopped = false;
  const follower = new LogFollower(api, "app", "m1", () => {}, () => stopped, (message) => {
    warnings.push(message);
  });
  for (let i = 0; i < 6; i++) await follower.refresh();
  stopped = true;
  await follower.done;
  assert.ok(calls >= 5);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /reading the logs of machine m1 keeps failing \(401 unauthorized\)/);
});

Deno.test("fly service logs: Fly's init and kernel lines are not the service's output", () => {
  for (
    const platform of [
      " INFO Starting init (commit: 1234)...",
      " INFO Preparing to run: `docker-entrypoint.sh postgres` as postgres",
      " INFO Main child exited normally with code: 1",
      " INFO Starting clean up.",
      "[    1.234567] reboot: Restarting system",
      " WARN hallpass exited, pid: 305, status: signal: 15 (SIGTERM)",
    ]
  ) assert.ok(isPlatformLine(platform), platform);
  for (
    const own of [
      "LOG:  database system is ready to accept connections",
      "INFO server started on :8080",
      "Starting init of the cache",
    ]
  ) assert.ok(!isPlatformLine(own), own);
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

Deno.test("fly service logs: init's 'Main child exited' line ends the drain without waiting for quiet", async () => {
  const api = logsApi([[line("bye"), line(" INFO Main child exited normally with code: 3")]]);
  const lines: string[] = [];
  await new LogFollower(
    api.api,
    "app",
    "m1",
    (_s, chunk) => lines.push(new TextDecoder().decode(chunk)),
    () => true,
  ).done;
  assert.deepEqual(lines, ["bye\n"]);
  assert.deepEqual(api.tokens, [""], "it fetched again after the exit line");
});
