/**
 * Docker over SSH, end to end against a real local sshd (Debian's openssh-server) and the local
 * engine: one SSH connection per host carrying every Engine API request as a streamlocal channel,
 * host keys checked against known_hosts (plain and hashed entries; unknown and changed keys
 * refused), attach and exec with stdin through the tunnel, and the CLI with
 * `--driver=docker:host=ssh://...`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Driver, type DriverContext, DriverError } from "../../drivers/contract.ts";
import { createDockerDriver } from "../../drivers/docker/create.ts";
import { createTestContext, type TestContext } from "../conformance/context.ts";
import { OutputCollector } from "../conformance/driver_suite.ts";
import { runCli } from "../helpers/cli.ts";
import { engineProblem, TEST_IMAGE } from "./engine_fixture.ts";
import { type SshdFixture, sshdProblem, startSshd } from "./sshd_fixture.ts";

const problem = (await engineProblem()) ?? (await sshdProblem());
const ignore = problem !== undefined && Deno.env.get("CI") !== "true";
const encoder = new TextEncoder();

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({
    name: `docker over ssh: ${name}`,
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });

/** Runs `true` through the driver, expects exit code 0, and closes the driver in any case. */
async function runsTrueThenCloses(opening: Promise<Driver>): Promise<void> {
  const driver = await opening;
  try {
    assert.equal((await runTask(driver, ["true"])).code, 0);
  } finally {
    await driver.close();
  }
}

/** Runs `body` with a fresh sshd and run context, and removes both afterwards. */
async function withSshd(
  options: { hashed?: boolean },
  body: (sshd: SshdFixture, ctx: TestContext) => Promise<void>,
): Promise<void> {
  const sshd = await startSshd(options);
  const ctx = await createTestContext();
  try {
    await body(sshd, ctx);
  } finally {
    await ctx.dispose();
    await sshd.stop();
  }
}

/**
 * Opens a driver the way the DSN `docker:host=ssh://...` does, with the fixture's `~/.ssh` (the
 * process environment is shared by concurrently running tests, so HOME is not changed here; the
 * CLI test below runs a real `pocketci run` with HOME set).
 */
function sshDriver(sshd: SshdFixture, ctx: DriverContext, knownHosts?: string): Promise<Driver> {
  return createDockerDriver(ctx, {
    host: sshd.url,
    hostSource: "the DSN's host parameter",
    ssh: {
      home: sshd.home,
      agentSocket: false,
      knownHostsFiles: [knownHosts ?? `${sshd.home}/.ssh/known_hosts`],
    },
  });
}

async function runTask(
  driver: Driver,
  command: string[],
  stdin?: string,
): Promise<{ code: number; out: OutputCollector }> {
  const out = new OutputCollector();
  const handle = await driver.startTask({
    id: `t-${crypto.randomUUID().slice(0, 8)}`,
    name: "t",
    image: TEST_IMAGE,
    command,
    env: {},
    mounts: [],
    ...(stdin === undefined ? {} : { stdin: encoder.encode(stdin) }),
  }, out.sink);
  const status = await handle.wait();
  await handle.remove();
  return { code: status.code, out };
}

test("the engine is reachable through sshd (CI fails here when a component is missing)", () => {
  if (problem) throw new Error(problem);
  return Promise.resolve();
});

test("tasks, stdin, volumes and a sandbox exec with stdin work over one SSH connection", () =>
  withSshd({}, async (sshd, ctx) => {
    {
      const driver = await sshDriver(sshd, ctx);
      try {
        const hello = await runTask(driver, ["sh", "-c", "echo out; echo err >&2; exit 4"]);
        assert.deepEqual([hello.code, hello.out.stdout, hello.out.stderr], [4, "out\n", "err\n"]);
        const cat = await runTask(driver, ["sh", "-c", "tr a-z A-Z"], "through the tunnel\n");
        assert.equal(cat.out.stdout, "THROUGH THE TUNNEL\n");
        const volume = await driver.createVolume({ name: "data", kind: "volume" });
        const writer = new OutputCollector();
        const handle = await driver.startTask({
          id: "writer",
          name: "writer",
          image: TEST_IMAGE,
          command: ["sh", "-c", "echo remote > d/file.txt"],
          env: {},
          mounts: [{ volume, path: "d" }],
        }, writer.sink);
        assert.equal((await handle.wait()).code, 0);
        const tar = new Uint8Array(
          await new Response(await driver.getArchive(volume, ["file.txt"])).arrayBuffer(),
        );
        assert.ok(new TextDecoder().decode(tar).includes("remote\n"));
        const box = await driver.startSandbox({
          id: "box",
          name: "box",
          image: TEST_IMAGE,
          command: [],
          env: {},
          mounts: [],
        });
        const boxOut = new OutputCollector();
        const status = await box.exec(
          {
            command: ["sh", "-c", 'cat; echo "[$GREETING]"; exit 7'],
            env: { GREETING: "hi" },
            stdin: encoder.encode("piped in\n"),
          },
          boxOut.sink,
        );
        assert.equal(status.code, 7);
        assert.equal(boxOut.stdout, "piped in\n[hi]\n");
        await box.close();
        // Parallel requests share the same connection too.
        const parallel = await Promise.all(
          [1, 2, 3, 4].map((n) => runTask(driver, ["echo", String(n)])),
        );
        assert.deepEqual(parallel.map((r) => r.out.stdout), ["1\n", "2\n", "3\n", "4\n"]);
      } finally {
        const report = await driver.close();
        assert.deepEqual(report.failed, []);
      }
    }
    const logins = sshd.log().match(/Accepted publickey for root/g) ?? [];
    assert.equal(
      logins.length,
      1,
      `expected one SSH login for the whole run, sshd logged:\n${sshd.log()}`,
    );
  }));

test("a hashed known_hosts entry ([host]:port) is accepted", () =>
  withSshd({ hashed: true }, async (sshd, ctx) => {
    const knownHosts = await Deno.readTextFile(`${sshd.home}/.ssh/known_hosts`);
    assert.match(knownHosts, /^\|1\|/, "the fixture should have hashed the entry");
    await runsTrueThenCloses(sshDriver(sshd, ctx));
  }));

test("a changed host key is refused with a clear error", () =>
  withSshd({}, async (sshd, ctx) => {
    // Record another server's key for this host:port.
    const other = await startSshd();
    const otherKey = other.hostKey;
    await other.stop();
    await Deno.writeTextFile(
      `${sshd.home}/.ssh/known_hosts`,
      `[127.0.0.1]:${sshd.port} ${otherKey}\n`,
    );
    {
      await assert.rejects(
        () => sshDriver(sshd, ctx),
        (error: unknown) => {
          assert.ok(error instanceof DriverError);
          assert.match(
            error.message,
            /host key of \[127\.0\.0\.1\]:\d+ \(ssh-ed25519 SHA256:.+\) does not match/,
          );
          assert.match(error.message, /ssh-keygen -R/);
          assert.ok(!error.message.includes("\n"));
          return true;
        },
      );
    }
    assert.equal(
      (sshd.log().match(/Accepted publickey/g) ?? []).length,
      0,
      "no login may happen with a wrong host key",
    );
  }));

test("an unknown host key is refused, naming the fingerprint and how to add it", () =>
  withSshd({}, async (sshd, ctx) => {
    await Deno.writeTextFile(`${sshd.home}/.ssh/known_hosts`, "");
    {
      await assert.rejects(
        () => sshDriver(sshd, ctx),
        /host key of \[127\.0\.0\.1\]:\d+ \(ssh-ed25519 SHA256:.+\) is not in .*known_hosts; .*ssh-keyscan -p \d+ 127\.0\.0\.1/,
      );
    }
  }));

test("a key the server does not accept, and a closed port, are one-line errors", () =>
  withSshd({}, async (sshd, ctx) => {
    await Deno.writeTextFile(`${sshd.dir}/authorized_keys`, "");
    {
      await assert.rejects(
        () => sshDriver(sshd, ctx),
        /accepted none of the keys offered \(.*id_ed25519\)/,
      );
      const closed = (() => {
        const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const port = (l.addr as Deno.NetAddr).port;
        l.close();
        return port;
      })();
      await assert.rejects(
        () =>
          createDockerDriver(ctx, {
            host: `ssh://root@127.0.0.1:${closed}`,
            ssh: { home: sshd.home, agentSocket: false },
          }),
        /ssh: cannot connect to root@127\.0\.0\.1:\d+: ECONNREFUSED/,
      );
    }
  }));

test("keys are taken from ssh-agent (SSH_AUTH_SOCK) when it holds them", async () => {
  const sshd = await startSshd();
  const ctx = await createTestContext();
  const socket = `${sshd.dir}/agent.sock`;
  const agent = new Deno.Command("ssh-agent", {
    args: ["-D", "-a", socket],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    for (let i = 0; i < 100 && !(await Deno.stat(socket).catch(() => undefined)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const added = await new Deno.Command("ssh-add", {
      args: [`${sshd.home}/.ssh/id_ed25519`],
      env: { SSH_AUTH_SOCK: socket },
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(added.success, new TextDecoder().decode(added.stderr));
    // No key files at all: only the agent can authenticate.
    await runsTrueThenCloses(createDockerDriver(ctx, {
      host: sshd.url,
      ssh: {
        agentSocket: socket,
        identityFiles: [],
        knownHostsFiles: [`${sshd.home}/.ssh/known_hosts`],
      },
    }));
    assert.match(sshd.log(), /Accepted publickey for root/);
  } finally {
    agent.kill("SIGTERM");
    await agent.status;
    await ctx.dispose();
    await sshd.stop();
  }
});

test("callers can pass their own key and host-key check (as the cloud drivers do)", () =>
  withSshd({}, async (sshd, ctx) => {
    await runsTrueThenCloses(createDockerDriver(ctx, {
      host: sshd.url,
      ssh: {
        privateKeys: [sshd.clientKey],
        agentSocket: false,
        identityFiles: [],
        knownHostsFiles: [`${sshd.home}/.ssh/known_hosts`],
      },
    }));
  }));

test("pocketci run --driver=docker:host=ssh://... runs a pipeline with a sandbox exec with stdin", async () => {
  const sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "pocketci-ssh-e2e-" });
  try {
    await Deno.writeTextFile(
      `${dir}/pipeline.ts`,
      `import { pipeline, sandbox, task } from "pocketci";
export default pipeline("over-ssh", async () => {
  const r = await task("hello").image(${JSON.stringify(TEST_IMAGE)}).sh("echo task-ran-remotely");
  await using box = await sandbox("box").image(${JSON.stringify(TEST_IMAGE)}).start();
  const e = await box.stdin("stdin-through-ssh").run("cat");
  console.log("RESULT " + JSON.stringify([r.stdout, e.stdout]));
});
`,
    );
    const result = await runCli([
      "run",
      `${dir}/pipeline.ts`,
      `--driver=docker:host=${sshd.url}`,
      `--state-dir=${dir}/state`,
    ], {
      cwd: dir,
      env: { HOME: sshd.home, SSH_AUTH_SOCK: "" },
    });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(
      result.stdout + result.stderr,
      /RESULT \["task-ran-remotely\\n","stdin-through-ssh"\]/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await sshd.stop();
  }
});
