/**
 * The fly driver against the fake Machines API: every DSN parameter (token, app, region, org,
 * size), both app modes, a task longer than the `wait` endpoint's timeout, whole output (10,000
 * lines in order, each once), OOM, retries on 429/5xx, volumes serialised between machines, and
 * the request shapes Fly documents (auto_destroy, restart `no`, guest, metadata).
 *
 * @module
 */

import assert from "node:assert/strict";
import { DriverError, type TaskSpec, UnsupportedError } from "../../drivers/contract.ts";
import { flyFactory } from "../../drivers/fly/factory.ts";
import { ephemeralAppName } from "../../drivers/fly/create.ts";
import { guestFor } from "../../drivers/fly/guest.ts";
import { OutputCollector } from "../conformance/driver_suite.ts";
import type { TestContext } from "../conformance/context.ts";
import {
  assertEngine,
  context,
  FAKE_TOKEN,
  fakeLeftovers,
  flyDriver,
  ignoreFly,
  startFake,
  TEST_IMAGE,
} from "./fake_fixture.ts";

// The fake answers `wait` after at most 1 s with a 408, as Fly does after 60 s.
const fake = ignoreFly ? undefined : startFake(1);

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name: `fly: ${name}`, ignore: ignoreFly, fn });

let counter = 0;
function task(script: string, extra: Partial<TaskSpec> = {}): TaskSpec {
  const id = `t${++counter}`;
  return {
    id,
    name: id,
    image: TEST_IMAGE,
    command: ["sh", "-c", script],
    env: {},
    mounts: [],
    ...extra,
  };
}

async function withContext(body: (ctx: TestContext) => Promise<void>): Promise<void> {
  const ctx = await context();
  try {
    await body(ctx);
  } finally {
    await ctx.dispose();
  }
}

function machineBodies(): Record<string, unknown>[] {
  return fake!.requests
    .filter((r) => r.method === "POST" && /^\/v1\/apps\/[^/]+\/machines$/.test(r.path))
    .map((r) => r.body as Record<string, unknown>);
}

test("the local engine answers (the fake's machines)", () => Promise.resolve(assertEngine()));

test("ephemeral app: ci-<namespace> in the org is created, then deleted with everything on close", async () => {
  await withContext(async (ctx) => {
    const driver = await flyDriver(ctx, { org: "my-org" });
    const app = ephemeralAppName(ctx.namespace);
    assert.equal(app, `ci-${ctx.namespace}`);
    assert.equal(fake!.apps.get(app)?.org, "my-org", "the app was created in the org");
    assert.equal(driver.capabilities.caches, false, "an ephemeral app cannot keep caches");
    await assert.rejects(
      () => driver.createVolume({ name: "npm", kind: "cache" }),
      (error: unknown) => error instanceof UnsupportedError && /app=/.test(error.message),
    );
    await driver.createVolume({ name: "v", kind: "volume" });
    assert.ok(ctx.live.has(`app:${app}`), "the app was recorded before it was created");
    const report = await driver.close();
    assert.deepEqual(report.failed, []);
    assert.ok(report.removed.some((r) => r.kind === "app" && r.id === app));
    assert.equal(fake!.apps.has(app), false, "the ephemeral app is gone");
    assert.deepEqual([...ctx.live.keys()], []);
  });
});

test("existing app: kept on close with its other volumes; a missing app is a clear error", async () => {
  await withContext(async (ctx) => {
    fake!.addApp("kept-app");
    const driver = await flyDriver(ctx, { app: "kept-app" });
    assert.equal(driver.capabilities.caches, true);
    const volume = await driver.createVolume({ name: "v", kind: "volume" });
    const result = new OutputCollector();
    const handle = await driver.startTask(
      task("echo hi > v/f; cat v/f", { mounts: [{ volume, path: "v" }] }),
      result.sink,
    );
    assert.equal((await handle.wait()).code, 0);
    assert.equal(result.stdout, "hi\n");
    assert.deepEqual((await driver.close()).failed, []);
    assert.ok(fake!.apps.has("kept-app"), "an existing app is kept");
    assert.equal(fake!.apps.get("kept-app")!.volumes.size, 0, "the run's volume was deleted");
    await assert.rejects(
      () => flyDriver(ctx, { app: "no-such-app" }),
      (error: unknown) =>
        error instanceof DriverError && error.code === "not_found" &&
        /"no-such-app" does not exist/.test(error.message),
    );
  });
});

test("token: missing is a one-line error naming FLY_API_TOKEN; a wrong one is a 401 without the token", async () => {
  await withContext(async (ctx) => {
    await assert.rejects(
      () => flyFactory.create({}, ctx),
      (error: unknown) =>
        error instanceof DriverError && error.code === "invalid" &&
        /FLY_API_TOKEN/.test(error.message) && !error.message.includes("\n"),
    );
    await assert.rejects(
      () => flyFactory.create({ token: "wrong-secret-xyz" }, ctx),
      (error: unknown) =>
        error instanceof Error && /401/.test(error.message) &&
        !error.message.includes("wrong-secret-xyz"),
    );
    assert.equal(fake!.apps.has(ephemeralAppName(ctx.namespace)), false);
  });
});

test("size: presets give the guest, limits override it (rounded up to Fly's units); unknown presets are refused", async () => {
  assert.deepEqual(guestFor("shared-cpu-1x", undefined), {
    cpu_kind: "shared",
    cpus: 1,
    memory_mb: 256,
  });
  assert.deepEqual(guestFor("performance-2x", undefined), {
    cpu_kind: "performance",
    cpus: 2,
    memory_mb: 4096,
  });
  assert.deepEqual(guestFor("shared-cpu-2x", { cpu: 3, memoryBytes: 1000 * 1024 * 1024 }), {
    cpu_kind: "shared",
    cpus: 4,
    memory_mb: 1024,
  });
  assert.deepEqual(guestFor("performance-1x", { memoryBytes: 3000 * 1024 * 1024 }), {
    cpu_kind: "performance",
    cpus: 1,
    memory_mb: 3072,
  });
  assert.throws(
    () => guestFor("shared-cpu-1x", { cpu: 9 }),
    (error: unknown) => error instanceof DriverError && /at most 8 CPUs/.test(error.message),
  );
  await withContext(async (ctx) => {
    await assert.rejects(
      () => flyDriver(ctx, { size: "huge-9x" }),
      (error: unknown) =>
        error instanceof DriverError && error.code === "invalid" &&
        /unknown Fly size "huge-9x"; use one of shared-cpu-1x/.test(error.message),
    );
    const driver = await flyDriver(ctx, { size: "shared-cpu-2x", region: "ord" });
    try {
      const before = machineBodies().length;
      const output = new OutputCollector();
      const handle = await driver.startTask(
        task("echo sized", { limits: { memoryBytes: 600 * 1024 * 1024 } }),
        output.sink,
      );
      assert.equal((await handle.wait()).code, 0);
      const body = machineBodies().slice(before)[0];
      const config = body.config as Record<string, unknown>;
      assert.equal(body.region, "ord", "the region parameter places the machine");
      assert.deepEqual(config.guest, { cpu_kind: "shared", cpus: 2, memory_mb: 768 });
      assert.equal(config.auto_destroy, true);
      assert.deepEqual(config.restart, { policy: "no" });
      assert.deepEqual(config.metadata, {
        pocketci_namespace: ctx.namespace,
        pocketci_run: ctx.runId,
        pocketci_task: "t" + counter,
      });
      const volume = await driver.createVolume({ name: "r", kind: "volume" });
      assert.equal(fake!.allVolumes().find((v) => v.id === volume.id)?.region, "ord");
    } finally {
      await driver.close();
    }
  });
});

test("a task longer than the wait endpoint's timeout is followed to its real end", async () => {
  await withContext(async (ctx) => {
    const driver = await flyDriver(ctx);
    try {
      const before = fake!.requests.length;
      const output = new OutputCollector();
      const started = Date.now();
      const handle = await driver.startTask(
        task("echo begin; sleep 3; echo end; exit 5"),
        output.sink,
      );
      const status = await handle.wait();
      assert.equal(status.code, 5);
      assert.ok(Date.now() - started >= 3000, "reported done before the task ended");
      assert.equal(output.stdout, "begin\nend\n");
      // The machine's waits: 408s (not yet) until the one that saw it stop; a driver taking a 408
      // for "done" would have stopped asking after the first.
      const waits = fake!.requests.slice(before).filter((r) =>
        r.path.endsWith("/wait") && r.query.get("state") === "stopped"
      ).map((r) => r.status);
      assert.equal(waits.at(-1), 200, `waits: ${waits}`);
      assert.ok(waits.filter((s) => s === 408).length >= 2, `waits: ${waits}`);
    } finally {
      await driver.close();
    }
  });
});

test("10,000 lines of stdout and stderr arrive in order, each once", async () => {
  await withContext(async (ctx) => {
    const driver = await flyDriver(ctx);
    try {
      const output = new OutputCollector();
      const handle = await driver.startTask(
        task("i=1; while [ $i -le 10000 ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done"),
        output.sink,
      );
      assert.equal((await handle.wait()).code, 0);
      for (const stream of ["out", "err"] as const) {
        const lines = (stream === "out" ? output.stdout : output.stderr).split("\n");
        assert.equal(lines.pop(), "");
        assert.equal(lines.length, 10_000);
        const wrong = lines.findIndex((line, i) => line !== `${stream}-${i + 1}`);
        assert.equal(wrong, -1, `${stream} line ${wrong + 1} is ${lines[wrong]}`);
      }
    } finally {
      await driver.close();
    }
  });
});

test("an OOM kill is reported from the machine's exit event", async () => {
  await withContext(async (ctx) => {
    const driver = await flyDriver(ctx);
    try {
      const output = new OutputCollector();
      const handle = await driver.startTask(
        task("x=$(head -c 600000000 /dev/zero | tr '\\0' a); echo ${#x}", {
          limits: { memoryBytes: 256 * 1024 * 1024 },
        }),
        output.sink,
      );
      const status = await handle.wait();
      assert.deepEqual([status.code, status.signal, status.oomKilled], [137, 9, true]);
    } finally {
      await driver.close();
    }
  });
});

test("429 and 5xx answers are retried; a create that may have happened is not repeated", async () => {
  await withContext(async (ctx) => {
    const driver = await flyDriver(ctx);
    try {
      fake!.faults.push({ method: "POST", path: /\/machines$/, status: 429, times: 2 });
      fake!.faults.push({ method: "GET", path: /\/machines\/[^/]+$/, status: 503, times: 2 });
      fake!.faults.push({ method: "POST", path: /\/exec$/, status: 502, times: 2 });
      const output = new OutputCollector();
      const handle = await driver.startTask(task("echo retried"), output.sink);
      assert.equal((await handle.wait()).code, 0);
      assert.equal(output.stdout, "retried\n");
      assert.deepEqual(fake!.faults.map((f) => f.times), [0, 0, 0]);
      fake!.faults.length = 0;
      fake!.faults.push({ method: "POST", path: /\/machines$/, status: 500, times: 1 });
      await assert.rejects(
        () => driver.startTask(task("true"), () => {}),
        (error: unknown) => error instanceof DriverError && /unknown/.test(error.message),
      );
      assert.deepEqual([...ctx.live.values()].filter((r) => r.kind === "machine"), []);
    } finally {
      fake!.faults.length = 0;
      await driver.close();
    }
  });
});

test("tasks sharing a volume run one at a time (a Fly volume attaches to one machine)", async () => {
  await withContext(async (ctx) => {
    const driver = await flyDriver(ctx);
    try {
      const volume = await driver.createVolume({ name: "shared", kind: "volume" });
      const mounts = [{ volume, path: "v" }];
      const rejectedBefore = fake!.requests.filter((r) => r.status === 422).length;
      const handles = await Promise.all(
        [1, 2].map((n) =>
          driver.startTask(
            task(`echo start-${n} >> v/log; sleep 1; echo end-${n} >> v/log`, { mounts }),
            () => {},
          )
        ),
      );
      assert.deepEqual((await Promise.all(handles.map((h) => h.wait()))).map((s) => s.code), [
        0,
        0,
      ]);
      const reader = new OutputCollector();
      await (await driver.startTask(task("cat v/log", { mounts }), reader.sink)).wait();
      const lines = reader.stdout.trim().split("\n");
      assert.deepEqual(
        lines.map((l) => l.slice(0, 3)),
        ["sta", "end", "sta", "end"],
        reader.stdout,
      );
      assert.equal(lines[0].slice(-1), lines[1].slice(-1), "the tasks overlapped");
      assert.equal(
        fake!.requests.filter((r) => r.status === 422).length,
        rejectedBefore,
        "a machine was created while the volume was attached elsewhere",
      );
    } finally {
      await driver.close();
    }
  });
});

test("an explicit entrypoint comes before the command; a missing image is image_not_found", async () => {
  await withContext(async (ctx) => {
    const driver = await flyDriver(ctx);
    try {
      const output = new OutputCollector();
      const handle = await driver.startTask(
        { ...task(""), entrypoint: ["sh", "-c"], command: ["echo from-entrypoint"] },
        output.sink,
      );
      assert.equal((await handle.wait()).code, 0);
      assert.equal(output.stdout, "from-entrypoint\n");
      await assert.rejects(
        () => driver.startTask(task("true", { image: "pocketci-no-such-image:1" }), () => {}),
        (error: unknown) =>
          error instanceof DriverError && error.code === "image_not_found" &&
          error.message.includes("pocketci-no-such-image:1"),
      );
      assert.deepEqual([...ctx.live.values()].filter((r) => r.kind === "machine"), []);
    } finally {
      await driver.close();
    }
  });
});

test("the fake enforces the one-machine attachment with an error that says so", async () => {
  fake!.addApp("attach-rule");
  const headers = { authorization: `Bearer ${FAKE_TOKEN}`, "content-type": "application/json" };
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${fake!.url}${path}`, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };
  const volume = await post("/v1/apps/attach-rule/volumes", { name: "one", region: "ord" });
  assert.equal(volume.status, 200);
  const config = {
    image: TEST_IMAGE,
    init: { exec: ["sleep", "30"] },
    mounts: [{ volume: volume.body.id, path: "/v" }],
    auto_destroy: true,
  };
  const first = await post("/v1/apps/attach-rule/machines", { config });
  assert.equal(first.status, 200);
  const second = await post("/v1/apps/attach-rule/machines", { config });
  assert.equal(second.status, 422);
  assert.match(second.body.error, /attaches to one machine at a time/);
  const bad = await post("/v1/apps/attach-rule/machines", {
    config: { image: TEST_IMAGE, guest: { cpu_kind: "shared", cpus: 1, memory_mb: 100 } },
  });
  assert.deepEqual([bad.status, typeof bad.body.error], [400, "string"]);
  const unauthorized = await fetch(`${fake!.url}/v1/apps/attach-rule`, { headers: {} });
  assert.equal(unauthorized.status, 401);
  assert.ok(typeof (await unauthorized.json()).error === "string");
  const gone = await fetch(`${fake!.url}/v1/apps/attach-rule`, { method: "DELETE", headers });
  assert.equal(gone.status, 202);
  await gone.body?.cancel();
});

test("gc lists the namespace's machines by metadata and removes them", async () => {
  await withContext(async (ctx) => {
    fake!.addApp("gc-app");
    const driver = await flyDriver(ctx, { app: "gc-app" });
    const output = new OutputCollector();
    const handle = await driver.startTask(task("echo up; sleep 30"), output.sink);
    await output.waitFor("stdout", "up");
    const maintenance = await flyFactory.maintenance!({ token: FAKE_TOKEN, app: "gc-app" }, ctx);
    const machines = (await maintenance.listResources()).filter((r) => r.kind === "machine");
    assert.equal(machines.length, 1);
    assert.equal(machines[0].runId, ctx.runId);
    await maintenance.removeResource(machines[0]);
    assert.ok((await handle.wait()).code >= 128, "the removed machine's task ended");
    assert.deepEqual(fake!.liveMachines().filter((m) => m.app === "gc-app"), []);
    assert.deepEqual((await driver.close()).failed, []);
  });
});

test("nothing is left on the fake or the engine", async () => {
  const machines = fake!.liveMachines().filter((m) => !["kept-app", "gc-app"].includes(m.app));
  const volumes = fake!.allVolumes();
  await fake!.close();
  assert.deepEqual(machines.map((m) => m.name), []);
  assert.deepEqual(volumes.map((v) => v.name), []);
  assert.deepEqual(await fakeLeftovers(fake!), []);
});
