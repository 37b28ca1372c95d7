/**
 * The agent protocol end to end: the agent runs as a local Deno subprocess on a unix
 * socket and the client talks to it (or a raw frame-level peer does, to misbehave).
 */

import assert from "node:assert/strict";
import { AgentClient } from "./client.ts";
import { connectUnix } from "./connect.ts";
import { type LocalAgent, startLocalAgent } from "./local_agent.ts";
import {
  decodeJson,
  encodeCredit,
  encodeData,
  encodeFrame,
  encodeJson,
  type Frame,
  FrameReader,
  FrameType,
  INITIAL_WINDOW,
  MAGIC,
  Stream,
} from "../../agent/protocol.ts";
import { DriverError } from "../contract.ts";
import { listTar, tarFromFiles } from "../archive/mod.ts";

const decoder = new TextDecoder();
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

async function withAgent(
  body: (agent: LocalAgent, client: AgentClient) => Promise<void>,
  args: string[] = [],
): Promise<void> {
  const agent = await startLocalAgent(args);
  let client: AgentClient | undefined;
  try {
    client = await agent.connect();
    await body(agent, client);
  } finally {
    await client?.close();
    await agent.stop();
  }
}

async function run(
  client: AgentClient,
  argv: string[],
  extra: { stdin?: Uint8Array; workDir?: string; env?: Record<string, string>; user?: string } = {},
) {
  let stdout = "";
  let stderr = "";
  const exec = await client.exec(
    { argv, env: extra.env ?? { PATH }, ...extra },
    (stream, chunk) => {
      if (stream === "stdout") stdout += decoder.decode(chunk);
      else stderr += decoder.decode(chunk);
    },
  );
  const status = await exec.wait();
  return { status, stdout, stderr };
}

/** A raw connection that has said hello, for tests that misbehave on purpose. */
async function rawConnection(agent: LocalAgent) {
  const conn = await Deno.connect({ transport: "unix", path: agent.socket });
  const reader = new FrameReader(conn.readable);
  const writer = conn.writable.getWriter();
  return {
    conn,
    reader,
    send: (frame: Uint8Array) => writer.write(frame),
    hello: async () => {
      await writer.write(encodeJson(FrameType.HELLO, 0, { magic: MAGIC, versions: [1] }));
      const frame = await reader.next();
      assert.equal(frame?.type, FrameType.HELLO);
    },
    close: () => {
      try {
        conn.close();
      } catch {
        // Closed by the agent.
      }
    },
  };
}

Deno.test("agent: hello agrees on version 1; ping answers", async () => {
  await withAgent(async (_agent, client) => {
    assert.equal(client.version, 1);
    assert.match(client.software, /^pocketci-agent linux /);
    assert.ok((await client.ping()) >= 0);
  });
});

Deno.test("agent: exit codes, 128+N for signals, env, workDir and command not found", async () => {
  await withAgent(async (_agent, client) => {
    assert.deepEqual((await run(client, ["sh", "-c", "exit 3"])).status, { code: 3 });
    assert.deepEqual((await run(client, ["sh", "-c", "kill -9 $$"])).status, {
      code: 137,
      signal: 9,
    });
    const env = await run(client, ["env"], { env: { ONLY: "this" } });
    assert.equal(env.stdout, "ONLY=this\n", "the agent's own environment leaked in");
    const dir = await Deno.makeTempDir();
    try {
      assert.equal((await run(client, ["pwd"], { workDir: dir })).stdout, `${dir}\n`);
    } finally {
      await Deno.remove(dir);
    }
    await assert.rejects(
      () => run(client, ["pocketci-no-such-command"]),
      (error: unknown) => error instanceof DriverError && error.code === "command_not_found",
    );
    await assert.rejects(
      () => run(client, []),
      (error: unknown) => error instanceof DriverError && error.code === "invalid",
    );
    const separate = await run(client, ["sh", "-c", "echo out; echo err >&2"]);
    assert.deepEqual([separate.stdout, separate.stderr], ["out\n", "err\n"]);
  });
});

Deno.test("agent: user runs the command as another uid", async () => {
  if (Deno.uid() !== 0) throw new Error("this test needs root (CI runs as root)");
  await withAgent(async (_agent, client) => {
    assert.equal((await run(client, ["id", "-u"], { user: "65534" })).stdout, "65534\n");
    assert.equal((await run(client, ["id", "-u"], { user: "nobody" })).stdout, "65534\n");
    await assert.rejects(
      () => run(client, ["id"], { user: "pocketci-no-such-user" }),
      /pocketci-no-such-user" does not exist/,
    );
  });
});

Deno.test("agent: version mismatch is a clear one-line error on both sides", async () => {
  await withAgent(async (agent) => {
    await assert.rejects(
      () => agent.connect({ versions: [99] }),
      (error: unknown) =>
        error instanceof DriverError && error.code === "unavailable" &&
        /version mismatch: the host speaks 99, this agent speaks 1/.test(error.message) &&
        !error.message.includes("\n"),
    );
  });
  const newer = await startLocalAgent(["--protocol-versions=2"]);
  try {
    await assert.rejects(
      () => newer.connect(),
      /the host speaks 1, this agent speaks 2; use an agent from the same PocketCI version/,
    );
  } finally {
    await newer.stop();
  }
});

Deno.test("agent: framing errors close that connection with an ERROR; the agent serves others", async () => {
  await withAgent(async (agent, client) => {
    // A length beyond the maximum.
    const bad = await rawConnection(agent);
    await bad.send(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0]));
    const error = await bad.reader.next();
    assert.equal(error?.type, FrameType.ERROR);
    assert.match(decodeJson<{ message: string }>(error!).message, /bad frame length 4294967295/);
    assert.equal(await bad.reader.next(), undefined, "the connection was not closed");
    bad.close();
    // A first frame that is not a hello.
    const early = await rawConnection(agent);
    await early.send(encodeFrame(FrameType.PING, 0, new Uint8Array()));
    const refused = await early.reader.next();
    assert.match(decodeJson<{ message: string }>(refused!).message, /expected a hello frame first/);
    early.close();
    // An unknown frame type after the hello.
    const odd = await rawConnection(agent);
    await odd.hello();
    await odd.send(encodeFrame(0x7f, 1, new Uint8Array()));
    const unknown = await odd.reader.next();
    assert.match(decodeJson<{ message: string }>(unknown!).message, /unknown frame type 0x7f/);
    odd.close();
    // Invalid JSON in an EXEC.
    const json = await rawConnection(agent);
    await json.hello();
    await json.send(encodeFrame(FrameType.EXEC, 1, new TextEncoder().encode("{nope")));
    const invalid = await json.reader.next();
    assert.match(decodeJson<{ message: string }>(invalid!).message, /invalid JSON payload/);
    json.close();
    // The first client still works.
    assert.equal((await run(client, ["echo", "still"])).stdout, "still\n");
  });
});

Deno.test("agent: the client refuses a peer that is not an agent, in one line", async () => {
  const dir = await Deno.makeTempDir();
  const listener = Deno.listen({ transport: "unix", path: `${dir}/s` });
  const serving = (async () => {
    const conn = await listener.accept();
    await conn.write(new TextEncoder().encode("SSH-2.0-OpenSSH_9.2\r\n"));
    await new Promise((resolve) => setTimeout(resolve, 200));
    conn.close();
  })();
  try {
    await assert.rejects(
      async () => AgentClient.connect(await connectUnix(`${dir}/s`)),
      (error: unknown) =>
        error instanceof DriverError && /bad frame length/.test(error.message) &&
        !error.message.includes("\n"),
    );
  } finally {
    await serving;
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent: 100 MB of output arrives intact with bounded memory on both sides", async () => {
  await withAgent(async (agent, client) => {
    const before = await agent.peakRss();
    const clientBefore = Deno.memoryUsage().rss;
    let bytes = 0;
    let zeros = true;
    let clientPeak = 0;
    const started = performance.now();
    const exec = await client.exec(
      { argv: ["head", "-c", "104857600", "/dev/zero"], env: { PATH } },
      (_stream, chunk) => {
        bytes += chunk.length;
        if (zeros && chunk.some((b) => b !== 0)) zeros = false;
        if ((bytes & 0xfffff) < chunk.length) {
          clientPeak = Math.max(clientPeak, Deno.memoryUsage().rss);
        }
      },
    );
    assert.deepEqual(await exec.wait(), { code: 0 });
    const seconds = (performance.now() - started) / 1000;
    assert.equal(bytes, 104857600);
    assert.ok(zeros);
    const after = await agent.peakRss();
    const agentGrowth = after - before;
    const clientGrowth = clientPeak - clientBefore;
    await Deno.stderr.write(new TextEncoder().encode(
      `100 MB in ${seconds.toFixed(2)} s; agent peak RSS ${(after / 2 ** 20).toFixed(0)} MiB ` +
        `(+${(agentGrowth / 2 ** 20).toFixed(0)}), client RSS +${
          (clientGrowth / 2 ** 20).toFixed(0)
        } MiB\n`,
    ));
    // Garbage of the frames comes and goes; what matters is that memory does not scale with
    // the output (the window test checks the agent never sends beyond its credit).
    assert.ok(agentGrowth < 64 * 2 ** 20, `the agent grew by ${agentGrowth} bytes`);
    assert.ok(clientGrowth < 64 * 2 ** 20, `the client grew by ${clientGrowth} bytes`);
  });
});

Deno.test("agent: a host that grants no credit receives one window, then the producer waits", async () => {
  await withAgent(async (agent) => {
    const raw = await rawConnection(agent);
    await raw.hello();
    await raw.send(
      encodeJson(FrameType.EXEC, 5, {
        argv: ["head", "-c", "10000000", "/dev/zero"],
        env: { PATH },
        stdin: false,
      }),
    );
    let received = 0;
    // One read at a time: a read that outlived its timeout is awaited by the next call.
    let inflight: Promise<Frame | undefined> | undefined;
    const next = async (timeoutMs: number): Promise<Frame | undefined> => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      inflight ??= raw.reader.next().then((frame) => {
        inflight = undefined;
        return frame;
      });
      const frame = await Promise.race([
        inflight,
        new Promise<undefined>((resolve) =>
          timer = setTimeout(() => resolve(undefined), timeoutMs)
        ),
      ]);
      clearTimeout(timer);
      return frame;
    };
    let frame = await next(5000);
    assert.equal(frame?.type, FrameType.STARTED);
    // Read until the agent goes quiet.
    while (true) {
      frame = await next(700);
      if (frame === undefined) break;
      assert.equal(frame.type, FrameType.DATA);
      received += frame.payload.length - 1;
    }
    assert.equal(received, INITIAL_WINDOW, "the agent sent beyond the window it was granted");
    // A grant lets exactly that much more through.
    await raw.send(encodeCredit(5, Stream.STDOUT, 100_000));
    let more = 0;
    while (true) {
      frame = await next(700);
      if (frame === undefined) break;
      more += frame.payload.length - 1;
    }
    assert.equal(more, 100_000);
    raw.close();
  });
});

Deno.test("agent: stdin larger than a frame reaches the command intact", async () => {
  await withAgent(async (_agent, client) => {
    const stdin = Uint8Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => (i * 31) & 0xff);
    const chunks: Uint8Array[] = [];
    const exec = await client.exec(
      { argv: ["cat"], env: { PATH }, stdin },
      (_stream, chunk) => chunks.push(chunk.slice()),
    );
    assert.equal((await exec.wait()).code, 0);
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const chunk of chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    assert.equal(out.length, stdin.length);
    assert.deepEqual(out, stdin);
    // A command that does not read its stdin still exits.
    const ignored = await run(client, ["true"], { stdin });
    assert.equal(ignored.status.code, 0);
  });
});

Deno.test("agent: kill during output ends the group with 128+N", async () => {
  await withAgent(async (_agent, client) => {
    let bytes = 0;
    let first: () => void = () => {};
    const flowing = new Promise<void>((resolve) => first = resolve);
    const exec = await client.exec({ argv: ["yes"], env: { PATH } }, (_s, chunk) => {
      bytes += chunk.length;
      first();
    });
    await flowing;
    await exec.kill("SIGTERM");
    assert.deepEqual(await exec.wait(), { code: 143, signal: 15 });
    assert.ok(bytes > 0);
    // A killed group takes its background children along.
    const dir = await Deno.makeTempDir();
    try {
      const bg = await client.exec(
        {
          argv: ["sh", "-c", "(sleep 0.6; touch late) & echo up; wait"],
          env: { PATH },
          workDir: dir,
        },
        () => {},
      );
      await bg.kill("SIGKILL");
      assert.equal((await bg.wait()).code, 137);
      await new Promise((resolve) => setTimeout(resolve, 900));
      await assert.rejects(() => Deno.stat(`${dir}/late`), Deno.errors.NotFound);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("agent: a connection that drops mid-exec fails the exec clearly and the agent kills it", async () => {
  const agent = await startLocalAgent();
  const dir = await Deno.makeTempDir();
  try {
    // The host sees the guest go away.
    const doomed = await startLocalAgent();
    const client = await doomed.connect();
    const exec = await client.exec({ argv: ["sleep", "30"], env: { PATH } }, () => {});
    await doomed.stop();
    await assert.rejects(
      () => exec.wait(),
      (error: unknown) =>
        error instanceof DriverError && error.code === "unavailable" &&
        /the guest agent closed the connection/.test(error.message),
    );
    await assert.rejects(
      () => client.exec({ argv: ["true"], env: { PATH } }, () => {}),
      DriverError,
    );
    await client.close();
    // The agent sees the host go away: what the connection started is killed.
    const host = await agent.connect();
    await host.exec(
      { argv: ["sh", "-c", "sleep 0.6; touch late"], env: { PATH }, workDir: dir },
      () => {},
    );
    await host.close();
    await new Promise((resolve) => setTimeout(resolve, 900));
    await assert.rejects(() => Deno.stat(`${dir}/late`), Deno.errors.NotFound);
  } finally {
    await agent.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent: several execs run at once on one connection", async () => {
  await withAgent(async (_agent, client) => {
    const started = performance.now();
    const results = await Promise.all(
      [0, 1, 2, 3, 4].map((i) => run(client, ["sh", "-c", `sleep 0.5; echo done-${i}`])),
    );
    const elapsed = performance.now() - started;
    assert.deepEqual(results.map((r) => r.stdout), [0, 1, 2, 3, 4].map((i) => `done-${i}\n`));
    assert.ok(elapsed < 1500, `5 execs of 0.5 s took ${elapsed.toFixed(0)} ms: not concurrent`);
  });
});

Deno.test("agent: put and get move tars; fs lays out directories and symlinks", async () => {
  await withAgent(async (_agent, client) => {
    const dir = await Deno.makeTempDir();
    try {
      const big = Uint8Array.from({ length: 900_000 }, (_, i) => (i * 7) & 0xff);
      await client.put(`${dir}/vol`, tarFromFiles({ "a/big.bin": { content: big }, "b.txt": "b" }));
      const entries = await listTar(await client.get(`${dir}/vol`, ["a/big.bin"]));
      assert.deepEqual(entries.find((e) => e.path === "a/big.bin")?.content, big);
      await assert.rejects(
        () => client.get(`${dir}/vol`, ["missing"]),
        (error: unknown) => error instanceof DriverError && error.code === "not_found",
      );
      await assert.rejects(
        () => client.put(`${dir}/vol`, tarFromFiles({ "../escape": "x" })),
        (error: unknown) => error instanceof DriverError && error.code === "invalid",
      );
      await client.fs({ op: "mkdir", path: `${dir}/task/x/y` });
      await client.fs({ op: "symlink", path: `${dir}/task/m`, target: `${dir}/vol` });
      assert.equal(await Deno.readTextFile(`${dir}/task/m/b.txt`), "b");
      await client.fs({ op: "remove", path: `${dir}/task` });
      await assert.rejects(() => Deno.stat(`${dir}/task`), Deno.errors.NotFound);
      await assert.rejects(
        () => client.fs({ op: "symlink", path: `${dir}/nope/deeper/m`, target: "/" }),
        (error: unknown) => error instanceof DriverError && error.code === "not_found",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("agent: a local agent dies with the process that started it, even on kill -9", async () => {
  const script = `
    import { startLocalAgent } from ${
    JSON.stringify(new URL("./local_agent.ts", import.meta.url).href)
  };
    const agent = await startLocalAgent();
    console.log(agent.pid, agent.socket);
    Deno.kill(Deno.pid, "SIGKILL");
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const [pidText, socket] = new TextDecoder().decode(out.stdout).trim().split(" ");
  const pid = Number(pidText);
  assert.ok(pid > 0 && socket?.endsWith("/agent.sock"), new TextDecoder().decode(out.stderr));
  // The killed parent could not remove the socket's directory.
  await Deno.remove(socket.slice(0, socket.lastIndexOf("/")), { recursive: true });
  const deadline = Date.now() + 5000;
  while (await Deno.stat(`/proc/${pid}`).then(() => true, () => false)) {
    if (Date.now() > deadline) {
      Deno.kill(pid, "SIGKILL");
      throw new Error("the agent outlived its parent");
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

Deno.test("agent: a host that sends input beyond its window is refused with a protocol error", async () => {
  // The host overruns: stdin beyond the window without waiting for credit.
  await withAgent(async (agent) => {
    const raw = await rawConnection(agent);
    await raw.hello();
    await raw.send(
      encodeJson(FrameType.EXEC, 3, { argv: ["sleep", "5"], env: { PATH }, stdin: true }),
    );
    assert.equal((await raw.reader.next())?.type, FrameType.STARTED);
    // Read while sending: the agent closes the connection once it refused the input.
    const refusal = (async () => {
      let frame: Frame | undefined;
      do frame = await raw.reader.next(); while (
        frame !== undefined && frame.type !== FrameType.ERROR
      );
      return frame === undefined ? undefined : decodeJson<{ message: string }>(frame).message;
    })();
    const chunk = new Uint8Array(64 * 1024);
    // The pipe takes 64 KiB (credited back at once), the window 256 KiB: the rest overruns.
    for (let i = 0; i < 10; i++) {
      await raw.send(encodeData(3, Stream.INPUT, chunk)).catch(() => {});
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const message = await Promise.race([
      refusal,
      new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 10_000)),
    ]);
    clearTimeout(timer);
    assert.match(message ?? "no ERROR frame", /more input on channel 3 than its window/);
    raw.close();
  });
});
