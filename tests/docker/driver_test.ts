/**
 * Docker-specific behaviour on the local engine, beyond the shared conformance suite: labels on
 * every resource, the per-run network with sandboxes reachable by name, entrypoints, pull
 * policies, limits and OOM, users, removal off the critical path, close() and gc maintenance,
 * and one-line errors for unreachable engines.
 *
 * @module
 */

import assert from "node:assert/strict";
// @ts-types="npm:@types/dockerode@^3"
import Docker from "dockerode";
import {
  type Driver,
  DriverError,
  type TaskHandle,
  type TaskSpec,
} from "../../drivers/contract.ts";
import { createDockerDriver } from "../../drivers/docker/create.ts";
import type { DockerDriver } from "../../drivers/docker/driver.ts";
import { dockerFactory } from "../../drivers/docker/factory.ts";
import { LABEL } from "../../drivers/docker/labels.ts";
import { mayShareNetns } from "../../drivers/docker/netns_pool.ts";
import { createTestContext, type TestContext } from "../conformance/context.ts";
import { OutputCollector } from "../conformance/driver_suite.ts";
import { assertEngine, ignoreDocker, TEST_IMAGE } from "./engine_fixture.ts";

const docker = new Docker({ socketPath: "/var/run/docker.sock" });

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({
    name: `docker driver: ${name}`,
    ignore: ignoreDocker,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });

let counter = 0;
function spec(command: string[], extra: Partial<TaskSpec> = {}): TaskSpec {
  const id = `t${++counter}-${crypto.randomUUID().slice(0, 6)}`;
  return { id, name: extra.name ?? id, image: TEST_IMAGE, command, env: {}, mounts: [], ...extra };
}

async function run(driver: Driver, task: TaskSpec) {
  const out = new OutputCollector();
  const handle = await driver.startTask(task, out.sink);
  const status = await handle.wait();
  return { status, stdout: out.stdout, stderr: out.stderr, handle };
}

async function withDriver(
  body: (driver: Driver, ctx: TestContext) => Promise<void>,
): Promise<void> {
  const ctx = await createTestContext();
  const driver = await dockerFactory.create({}, ctx);
  try {
    await body(driver, ctx);
  } finally {
    const report = await driver.close();
    assert.deepEqual(report.failed, []);
    await ctx.dispose();
  }
}

test("the local engine answers and the test image exists", () => Promise.resolve(assertEngine()));

test("containers, volumes and the network carry namespace, run and task labels", async () => {
  await withDriver(async (driver, ctx) => {
    const volume = await driver.createVolume({ name: "lab", kind: "volume" });
    const out = new OutputCollector();
    const task = spec(["sleep", "5"], { name: "labelled", mounts: [{ volume, path: "v" }] });
    const handle = await driver.startTask(task, out.sink);
    const filters = { label: [`${LABEL.run}=${ctx.runId}`] };
    const [container] = await docker.listContainers({
      filters: { label: [...filters.label, `${LABEL.task}=${task.id}`] },
    });
    assert.equal(container.Labels[LABEL.namespace], ctx.namespace);
    assert.equal(container.Labels[LABEL.kind], "task");
    const [vol] = (await docker.listVolumes({ filters })).Volumes;
    assert.equal(vol.Name, volume.id);
    assert.equal(vol.Labels[LABEL.namespace], ctx.namespace);
    const [network] = await docker.listNetworks({ filters });
    assert.equal(network.Labels?.[LABEL.namespace], ctx.namespace);
    // The task joins the namespace of a network holder that is on the run's network.
    const mode = (await docker.getContainer(container.Id).inspect()).HostConfig.NetworkMode;
    assert.match(mode ?? "", /^container:/);
    const holder = await docker.getContainer(mode!.slice("container:".length)).inspect();
    assert.equal(holder.HostConfig.NetworkMode, network.Name);
    assert.equal(holder.Config.Labels[LABEL.kind], "netns");
    assert.equal(holder.Config.Labels[LABEL.run], ctx.runId);
    await handle.stop(0);
  });
});

/** The holder a task's container joined (its ID), read from the engine. */
async function holderOf(handle: TaskHandle): Promise<string> {
  const id = (handle as unknown as { container: { id: string } }).container.id;
  const mode = (await docker.getContainer(id).inspect()).HostConfig.NetworkMode ?? "";
  assert.match(mode, /^container:/);
  return mode.slice("container:".length);
}

test("network holders: sequential tasks reuse one; tasks running side by side never share one", async () => {
  await withDriver(async (driver, ctx) => {
    const first = await run(driver, spec(["true"]));
    const second = await run(driver, spec(["true"]));
    assert.equal(await holderOf(second.handle), await holderOf(first.handle));
    // Three tasks listen on the same port at the same time: in one namespace two would fail.
    const listen = "nc -l -p 9000 </dev/null & p=$!; sleep 2; kill -0 $p && echo listening";
    const side = await Promise.all([1, 2, 3].map(() => run(driver, spec(["sh", "-c", listen]))));
    for (const r of side) assert.equal(r.stdout, "listening\n", r.stderr);
    const holders = await Promise.all(side.map((r) => holderOf(r.handle).catch(() => "direct")));
    const shared = holders.filter((h) => h !== "direct");
    assert.equal(new Set(shared).size, shared.length, `holders shared: ${holders}`);
    // Afterwards the port is free again in the holder a later task gets.
    const after = await run(driver, spec(["sh", "-c", listen]));
    assert.equal(after.stdout, "listening\n", after.stderr);
    const all = await docker.listContainers({
      all: true,
      filters: { label: [`${LABEL.run}=${ctx.runId}`, `${LABEL.kind}=netns`] },
    });
    assert.ok(all.length >= 1 && all.length <= 3, `${all.length} holders`);
  });
});

test("network holders: a task that changes /etc/hosts does not pass the change on", async () => {
  await withDriver(async (driver) => {
    const writer = await run(
      driver,
      spec(["sh", "-c", "echo '10.9.9.9 planted' >> /etc/hosts && grep -c planted /etc/hosts"]),
    );
    assert.equal(writer.stdout, "1\n", writer.stderr);
    const used = await holderOf(writer.handle);
    const reader = await run(driver, spec(["sh", "-c", "grep -c planted /etc/hosts || true"]));
    assert.equal(reader.stdout, "0\n", reader.stderr);
    assert.notEqual(await holderOf(reader.handle), used);
    // The changed holder is removed (in the background), not kept for later.
    for (let i = 0; i < 100; i++) {
      const gone = await docker.getContainer(used).inspect().then(() => false, () => true);
      if (gone) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await assert.rejects(docker.getContainer(used).inspect(), /no such container/i);
  });
});

test("network holders: a connection closed in one task leaves no TIME_WAIT socket for the next", async () => {
  await withDriver(async (driver) => {
    // The server closes first, so its end would stay in TIME_WAIT for a minute.
    const talk = await run(
      driver,
      spec(["sh", "-c", "(nc -l -p 9000 -e echo hi &); sleep 0.3; (sleep 1) | nc 127.0.0.1 9000"]),
    );
    assert.equal(talk.stdout, "hi\n", talk.stderr);
    const next = await run(driver, spec(["sh", "-c", "netstat -tan | grep -c TIME_WAIT || true"]));
    assert.equal(await holderOf(next.handle), await holderOf(talk.handle));
    assert.equal(next.stdout, "0\n", next.stderr);
  });
});

test("network holders: a task still starts when its holder was stopped behind the driver's back", async () => {
  await withDriver(async (driver) => {
    const first = await run(driver, spec(["true"]));
    await docker.getContainer(await holderOf(first.handle)).kill();
    const next = await run(driver, spec(["sh", "-c", "echo ran"]));
    assert.equal(next.stdout, "ran\n", next.stderr);
    assert.equal(next.status.code, 0);
  });
});

Deno.test("network holders: a privileged task never shares a namespace (it could change it)", () => {
  assert.equal(mayShareNetns(spec(["true"], { privileged: true })), false);
  assert.equal(mayShareNetns(spec(["true"])), true);
});

test("a sandbox is reachable from tasks by its name on the run's network", async () => {
  await withDriver(async (driver) => {
    const box = await driver.startSandbox({ ...spec([]), name: "db" });
    const serve = new OutputCollector();
    const started = await box.exec(
      { command: ["sh", "-c", "mkdir -p /www && echo pong > /www/ping && httpd -p 8080 -h /www"] },
      serve.sink,
    );
    assert.equal(started.code, 0, serve.stderr);
    const client = await run(driver, spec(["wget", "-q", "-O", "-", "http://db:8080/ping"]));
    assert.equal(client.stdout, "pong\n", client.stderr);
    await box.close();
  });
});

test("starting a task ID that already has a container in the run returns that container", async () => {
  await withDriver(async (driver) => {
    const task = spec(["sh", "-c", "echo first-start; sleep 1; echo done"]);
    const first = new OutputCollector();
    const handle = await driver.startTask(task, first.sink);
    await first.waitFor("stdout", "first-start");
    const second = new OutputCollector();
    const again = await driver.startTask(task, second.sink);
    assert.equal((await again.wait()).code, 0);
    assert.equal((await handle.wait()).code, 0);
    assert.equal(
      second.stdout,
      "first-start\ndone\n",
      "the output is replayed, the command did not run twice",
    );
    const containers = await docker.listContainers({
      all: true,
      filters: { label: [`${LABEL.task}=${task.id}`] },
    });
    assert.equal(containers.length, 1);
  });
});

test("the image's ENTRYPOINT is cleared unless the task sets one", async () => {
  await withDriver(async (driver) => {
    const image = "pocketci-test/entrypoint:latest";
    assert.equal((await run(driver, spec(["echo", "plain"], { image }))).stdout, "plain\n");
    const explicit = await run(driver, spec(["x"], { image, entrypoint: ["echo", "explicit"] }));
    assert.equal(explicit.stdout, "explicit x\n");
  });
});

test("pull policies: never refuses a missing image; missing tries the registry and names the image", async () => {
  await withDriver(async (driver) => {
    await assert.rejects(
      () =>
        driver.startTask(
          spec(["true"], { image: "pocketci-test/absent:1", pull: "never" }),
          () => {},
        ),
      (error: unknown) =>
        error instanceof DriverError && error.code === "image_not_found" &&
        /pocketci-test\/absent:1 is not present .* "never"/.test(error.message),
    );
    await assert.rejects(
      () => driver.startTask(spec(["true"], { image: "localhost:1/pocketci-absent:1" }), () => {}),
      (error: unknown) =>
        error instanceof DriverError && error.code === "image_not_found" &&
        /^cannot pull image localhost:1\/pocketci-absent:1: .+/.test(error.message) &&
        !error.message.includes("\n"),
    );
    // A present image is used as is under "never" and "missing".
    assert.equal((await run(driver, spec(["true"], { pull: "never" }))).status.code, 0);
  });
});

test("platform: a local image of the host's platform runs; another platform is not taken for it", async () => {
  await withDriver(async (driver) => {
    const arch = (await docker.version()).Arch;
    const other = arch === "arm64" ? "linux/amd64" : "linux/arm64";
    const ok = await run(driver, spec(["true"], { platform: `linux/${arch}`, pull: "never" }));
    assert.equal(ok.status.code, 0);
    await assert.rejects(
      () => driver.startTask(spec(["true"], { platform: other, pull: "never" }), () => {}),
      (error: unknown) =>
        error instanceof DriverError && error.code === "image_not_found" &&
        error.message.includes(`(${other}) is not present`),
    );
  });
});

test("close() right after a failed start still removes the run's network (no race with its creation)", async () => {
  const ctx = await createTestContext();
  const driver = await dockerFactory.create({}, ctx);
  await assert.rejects(() =>
    driver.startTask(spec(["true"], { image: "pocketci-test/absent:2", pull: "never" }), () => {})
  );
  const report = await driver.close();
  assert.deepEqual(report.failed, []);
  // Give a creation that close() did not wait for the time to land.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const networks = await docker.listNetworks({ filters: { label: [`${LABEL.run}=${ctx.runId}`] } });
  await Promise.all(networks.map((n) => docker.getNetwork(n.Id).remove()));
  assert.deepEqual(networks.map((n) => n.Name), []);
  assert.deepEqual([...ctx.live.values()], []);
  await ctx.dispose();
});

test("memory and cpu limits are applied; an OOM kill says so", async () => {
  await withDriver(async (driver) => {
    const out = new OutputCollector();
    const limited = await driver.startTask(
      spec(["sleep", "5"], { limits: { cpu: 0.5, memoryBytes: 64 * 1024 * 1024 } }),
      out.sink,
    );
    const [info] = await docker.listContainers({ filters: { label: [`${LABEL.task}`] } }).then(
      async (list) => await Promise.all(list.map((c) => docker.getContainer(c.Id).inspect())),
    ).then((all) => all.filter((i) => i.Config.Labels[LABEL.task]?.startsWith(limited.id)));
    assert.equal(info.HostConfig.NanoCpus, 500_000_000);
    assert.equal(info.HostConfig.Memory, 64 * 1024 * 1024);
    await limited.stop(0);
    const oom = await run(
      driver,
      spec(["sh", "-c", "head -c 200000000 /dev/zero | tr '\\0' a | sort >/dev/null"], {
        limits: { memoryBytes: 24 * 1024 * 1024 },
      }),
    );
    assert.equal(oom.status.code, 137);
    assert.equal(oom.status.oomKilled, true);
    assert.equal(oom.status.signal, 9);
  });
});

test("user, privileged refusal or success, and env reach the container", async () => {
  await withDriver(async (driver) => {
    const user = await run(
      driver,
      spec(["sh", "-c", "id -u; echo $GREETING"], { user: "65534", env: { GREETING: "hi" } }),
    );
    assert.equal(user.stdout, "65534\nhi\n");
    try {
      const privileged = await run(
        driver,
        spec(["sh", "-c", "grep CapEff /proc/self/status"], { privileged: true }),
      );
      assert.match(privileged.stdout, /CapEff:\s+[0-9a-f]*f{8}/);
    } catch (error) {
      assert.ok(error instanceof DriverError && error.code === "unsupported", String(error));
      assert.match(error.message, /cannot start privileged containers/);
    }
  });
});

test("removal is off the critical path: remove() returns at once, close() finishes it", async () => {
  const ctx = await createTestContext();
  const driver = await dockerFactory.create({}, ctx);
  const { handle } = await run(driver, spec(["true"]));
  const started = performance.now();
  await handle.remove();
  assert.ok(performance.now() - started < 20, `remove() took ${performance.now() - started} ms`);
  const report = await driver.close();
  assert.deepEqual(report.failed, []);
  const left = await docker.listContainers({
    all: true,
    filters: { label: [`${LABEL.run}=${ctx.runId}`] },
  });
  assert.deepEqual(left, []);
  assert.deepEqual([...ctx.live.values()], []);
  await ctx.dispose();
});

test("close() removes running and stopped containers, volumes and the network; caches stay until gc", async () => {
  const ctx = await createTestContext();
  const driver = await dockerFactory.create({}, ctx);
  const cache = await driver.createVolume({ name: "keep", kind: "cache" });
  const volume = await driver.createVolume({ name: "gone", kind: "volume" });
  await driver.startTask(
    spec(["sleep", "60"], { mounts: [{ volume, path: "v" }, { volume: cache, path: "c" }] }),
    () => {},
  );
  await run(driver, spec(["true"]));
  await driver.startSandbox(spec([]));
  const report = await driver.close();
  assert.deepEqual(report.failed, []);
  const filters = { label: [`${LABEL.run}=${ctx.runId}`] };
  assert.deepEqual(await docker.listContainers({ all: true, filters }), []);
  assert.deepEqual(await docker.listNetworks({ filters }), []);
  const volumes = (await docker.listVolumes({ filters })).Volumes ?? [];
  assert.deepEqual(volumes.map((v) => v.Name), [cache.id]);
  // gc: maintenance lists the cache and removes it; it refuses what the namespace does not own.
  const maintenance = await dockerFactory.maintenance!({}, ctx);
  const listed = await maintenance.listResources();
  assert.deepEqual(listed.map((r) => [r.kind, r.id]), [["cache", cache.id]]);
  assert.equal(listed[0].runId, ctx.runId);
  await assert.rejects(
    () => maintenance.removeResource({ kind: "network", id: "bridge", driver: "docker" }),
    /does not carry the label io\.pocketci\.namespace=/,
  );
  await maintenance.removeResource(listed[0]);
  assert.deepEqual(await maintenance.listResources(), []);
  await ctx.dispose();
});

test("gc maintenance removes what a killed run left (containers, volumes, network)", async () => {
  const ctx = await createTestContext();
  const driver = await dockerFactory.create({}, ctx);
  const volume = await driver.createVolume({ name: "orphan", kind: "volume" });
  await driver.startTask(spec(["sleep", "60"], { mounts: [{ volume, path: "v" }] }), () => {});
  await driver.putArchive(volume, ReadableStream.from([new Uint8Array(1024)]));
  // No close(): as if the run was killed with SIGKILL.
  const maintenance = await dockerFactory.maintenance!({}, ctx);
  const left = await maintenance.listResources();
  assert.deepEqual(new Set(left.map((r) => r.kind)), new Set(["container", "volume", "network"]));
  for (const kind of ["container", "volume", "network"]) {
    for (const resource of left.filter((r) => r.kind === kind)) {
      await maintenance.removeResource(resource);
    }
  }
  assert.deepEqual(await maintenance.listResources(), []);
  await (driver as unknown as { engine: { close(): Promise<void> } }).engine.close();
  await ctx.dispose();
});

test("an unreachable engine is one line that says what was tried and how to fix it", async () => {
  const ctx = await createTestContext();
  try {
    await assert.rejects(
      () => dockerFactory.create({ host: "unix:///nonexistent/docker.sock" }, ctx),
      (error: unknown) => {
        assert.ok(error instanceof DriverError && error.code === "unavailable");
        assert.match(
          error.message,
          /socket \/nonexistent\/docker\.sock \(the DSN's host parameter\) does not exist; start dockerd/,
        );
        assert.ok(!error.message.includes("\n"));
        return true;
      },
    );
    await assert.rejects(
      () => dockerFactory.create({ host: "tcp://127.0.0.1:1" }, ctx),
      /cannot reach the Docker engine at tcp:\/\/127\.0\.0\.1:1 \(the DSN's host parameter\): ECONNREFUSED; check that dockerd listens there/,
    );
    // A stale socket path nobody listens on (connecting to a non-socket file is refused too).
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/dead.sock`, "");
    await assert.rejects(
      () => dockerFactory.create({ host: `unix://${dir}/dead.sock` }, ctx),
      /nothing listens on .*dead\.sock .*dockerd is not running/,
    );
    await Deno.remove(dir, { recursive: true });
  } finally {
    await ctx.dispose();
  }
});

test("the driver works with exactly the permissions it declares", async () => {
  const needs = dockerFactory.permissions({});
  const flags = needs.map((n) =>
    n.values === true ? `--allow-${n.permission}` : `--allow-${n.permission}=${n.values.join(",")}`
  );
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      script,
      `import { dockerFactory } from ${
        JSON.stringify(new URL("../../drivers/docker/factory.ts", import.meta.url).href)
      };
const records = [];
const ctx = { namespace: "perm-probe", runId: "run-" + Date.now(), runDir: "/nonexistent", stateDir: "/nonexistent",
  record: (r) => { records.push(r); return Promise.resolve(); }, forget: () => Promise.resolve(), warn: () => {} };
const driver = await dockerFactory.create({}, ctx);
let out = "";
const volume = await driver.createVolume({ name: "p", kind: "volume" });
await driver.putArchive(volume, ReadableStream.from([new Uint8Array(1024)]));
const handle = await driver.startTask({ id: "p", name: "p", image: ${
        JSON.stringify(TEST_IMAGE)
      }, command: ["echo", "permitted"], env: {}, mounts: [{ volume, path: "v" }],
  stdin: new TextEncoder().encode("x") }, (_s, c) => out += new TextDecoder().decode(c));
const status = await handle.wait();
const report = await driver.close();
if (status.code !== 0 || out !== "permitted\\n" || report.failed.length) { console.error(status, out, report); Deno.exit(1); }
`,
    );
    const result = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        `--config=${new URL("../../deno.json", import.meta.url).pathname}`,
        ...flags,
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(result.stderr);
    assert.ok(result.success, `flags ${flags.join(" ")}: ${stderr}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("pulls send the credentials from the Docker CLI config to the registry", async () => {
  // A registry stand-in on 127.0.0.1 (the engine treats loopback registries as plain HTTP): it
  // asks for Basic auth, records what the engine sent, and has no images.
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const auth = request.headers.get("authorization");
    if (auth) seen.push(auth);
    if (!auth) {
      return new Response("{}", {
        status: 401,
        headers: { "WWW-Authenticate": 'Basic realm="pocketci-test"' },
      });
    }
    return new Response(
      JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }] }),
      {
        status: 404,
        headers: { "Content-Type": "application/json" },
      },
    );
  });
  const registry = `127.0.0.1:${server.addr.port}`;
  const configDir = await Deno.makeTempDir();
  const ctx = await createTestContext();
  try {
    await Deno.writeTextFile(
      `${configDir}/config.json`,
      JSON.stringify({ auths: { [registry]: { auth: btoa("ci-robot:registry-pass") } } }),
    );
    const driver = await createDockerDriver(ctx, { dockerConfigPath: `${configDir}/config.json` });
    const image = `${registry}/pocketci/absent:1`;
    try {
      await assert.rejects(
        () => driver.startTask(spec(["true"], { image }), () => {}),
        (error: unknown) =>
          error instanceof DriverError && error.code === "image_not_found" &&
          error.message.startsWith(`cannot pull image ${image}: `) && !error.message.includes("\n"),
      );
    } finally {
      assert.deepEqual((await driver.close()).failed, []);
    }
    assert.ok(
      seen.includes(`Basic ${btoa("ci-robot:registry-pass")}`),
      `the registry saw: ${JSON.stringify(seen)}`,
    );
  } finally {
    await ctx.dispose();
    await server.shutdown();
    await Deno.remove(configDir, { recursive: true });
  }
});

test("close() frees the run's network from a lingering endpoint of one of its containers", async () => {
  const ctx = await createTestContext();
  const driver = await dockerFactory.create({}, ctx) as DockerDriver;
  const task = spec(["true"]);
  const { handle } = await run(driver, task);
  await handle.remove();
  const name = driver.containerName(task.id);
  for (let i = 0; i < 100; i++) {
    const gone = await docker.getContainer(name).inspect().then(() => false, () => true);
    if (gone) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  // Something holds an endpoint on the run's network under the name of the run's container
  // (as an engine that has not released it yet would): close() must still remove the network.
  const network = await driver.network();
  const holder = await docker.createContainer({
    name,
    Image: TEST_IMAGE,
    Cmd: ["sleep", "60"],
    HostConfig: { NetworkMode: network },
  });
  try {
    await holder.start();
    const report = await driver.close();
    assert.deepEqual(report.failed, []);
    assert.deepEqual(
      await docker.listNetworks({ filters: { label: [`${LABEL.run}=${ctx.runId}`] } }),
      [],
    );
  } finally {
    await holder.remove({ force: true });
    await ctx.dispose();
  }
});

test("20 short tasks each printing one line: every line arrives exactly once", async () => {
  // The logs follow of Engine 20.10 can end before a container's last output (seen with a final
  // line without a newline) when the container exits while the request is being set up; the
  // catch-up read after the exit must fill it in, without repeating what was delivered.
  await withDriver(async (driver) => {
    const missed: string[] = [];
    for (let i = 0; i < 20; i++) {
      const end = i % 2 === 0 ? "" : "\\n";
      const { status, stdout, stderr } = await run(
        driver,
        spec(["sh", "-c", `printf 'line-${i}${end}'; printf 'err-${i}${end}' >&2`]),
      );
      assert.equal(status.code, 0);
      const nl = end === "" ? "" : "\n";
      if (stdout !== `line-${i}${nl}` || stderr !== `err-${i}${nl}`) {
        missed.push(`${i}: ${JSON.stringify(stdout)} ${JSON.stringify(stderr)}`);
      }
    }
    assert.deepEqual(missed, []);
  });
});

test("re-attaching while tasks exit still delivers every byte exactly once", async () => {
  // attachTask follows the logs too, so it needs the same catch-up read after the exit; the
  // attaches are spread over the tasks' lifetime so that some land while a task is exiting.
  await withDriver(async (driver) => {
    const missed: string[] = [];
    await Promise.all(Array.from({ length: 12 }, async (_, i) => {
      const task = spec(["sh", "-c", `sleep 0.3; printf 'line-${i}'; printf 'err-${i}' >&2`]);
      const handle = await driver.startTask(task, () => {});
      await new Promise((resolve) => setTimeout(resolve, 150 + i * 25));
      const again = new OutputCollector();
      const attached = await driver.attachTask(task.id, again.sink);
      assert.ok(attached, `task ${i} could not be re-attached`);
      await attached.wait();
      await handle.wait();
      if (again.stdout !== `line-${i}` || again.stderr !== `err-${i}`) {
        missed.push(`${i}: ${JSON.stringify(again.stdout)} ${JSON.stringify(again.stderr)}`);
      }
    }));
    assert.deepEqual(missed, []);
  });
});

test("lines longer than 16 KiB, many lines and a final partial line arrive intact", async () => {
  await withDriver(async (driver) => {
    const script = "head -c 50000 /dev/zero | tr '\\0' x; echo; seq 1 3000; " +
      "head -c 40000 /dev/zero | tr '\\0' y >&2; printf tail";
    const { status, stdout, stderr } = await run(driver, spec(["sh", "-c", script]));
    assert.equal(status.code, 0);
    const numbers = Array.from({ length: 3000 }, (_, i) => `${i + 1}\n`).join("");
    assert.equal(stdout, "x".repeat(50000) + "\n" + numbers + "tail");
    assert.equal(stderr, "y".repeat(40000));
  });
});
