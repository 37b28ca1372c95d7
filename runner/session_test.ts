import assert from "node:assert/strict";
import {
  type Driver,
  DriverError,
  type ExitStatus,
  type TaskHandle,
  type TaskSpec,
} from "../drivers/contract.ts";
import type { RunEvent } from "./events.ts";
import { Masker } from "./mask.ts";
import { RunSession } from "./session.ts";

interface FakeOptions {
  start?: (spec: TaskSpec) => Promise<TaskHandle>;
  capabilities?: Partial<Driver["capabilities"]>;
  unsupportedReasons?: Driver["unsupportedReasons"];
}

function fakeDriver(options: FakeOptions = {}): { driver: Driver; specs: TaskSpec[] } {
  const specs: TaskSpec[] = [];
  const unused = () => Promise.reject(new Error("unused"));
  const driver: Driver = {
    name: "native",
    capabilities: {
      liveStreaming: true,
      separateStderr: true,
      stdin: true,
      sandboxes: false,
      user: false,
      privileged: false,
      limits: false,
      caches: false,
      images: false,
      ...options.capabilities,
    },
    unsupportedReasons: options.unsupportedReasons,
    startTask: (spec, output) => {
      specs.push(spec);
      if (options.start) return options.start(spec);
      output("stdout", new TextEncoder().encode(`token=${spec.env.TOKEN ?? ""}\n`));
      return Promise.resolve(handle(spec.id, Promise.resolve({ code: 0 })));
    },
    attachTask: () => Promise.resolve(undefined),
    createVolume: unused,
    removeVolume: unused,
    putArchive: unused,
    getArchive: unused,
    startSandbox: unused,
    close: () => Promise.resolve({ removed: [], failed: [] }),
  };
  return { driver, specs };
}

function handle(
  id: string,
  exit: Promise<ExitStatus>,
  remove = () => Promise.resolve(),
): TaskHandle {
  return { id, wait: () => exit, stop: () => Promise.resolve(), remove };
}

function session(driver: Driver, secrets: Record<string, string> = {}) {
  const events: RunEvent[] = [];
  const s = new RunSession({
    driver,
    driverName: "native",
    runId: "run-1",
    masker: new Masker(Object.values(secrets)),
    secrets: new Map(Object.entries(secrets)),
    emit: (event) => events.push(event),
    paths: { baseDir: "/nonexistent", readRoots: [], writeRoots: [] },
  });
  return { s, events };
}

const request = (extra: Record<string, unknown> = {}) => ({
  name: "t",
  command: ["x"],
  env: {},
  mounts: [],
  ...extra,
});

Deno.test("session: env gets CI variables and resolved secrets; output is masked", async () => {
  const { driver, specs } = fakeDriver();
  const { s, events } = session(driver, { TOKEN: "tok-secret-1" });
  const result = await s.runTask(request({ env: { TOKEN: { pocketciSecret: "TOKEN" }, A: "b" } }));
  assert.equal(result.status, "success");
  assert.equal(result.stdout, "token=***\n");
  assert.deepEqual(specs[0].env, {
    TOKEN: "tok-secret-1",
    A: "b",
    CI: "true",
    POCKETCI: "true",
    POCKETCI_RUN_ID: "run-1",
    POCKETCI_TASK: "t",
  });
  assert.ok(!JSON.stringify(events).includes("tok-secret-1"));
});

Deno.test("session: a driver that cannot start the task gives status error with code null", async () => {
  const { driver } = fakeDriver({
    start: () =>
      Promise.reject(new DriverError("image_not_found", "image nope:1 not found; pull it")),
  });
  const { s, events } = session(driver);
  const result = await s.runTask(request());
  assert.equal(result.status, "error");
  assert.equal(result.code, null);
  assert.equal(result.error, "image nope:1 not found; pull it");
  assert.ok(events.some((event) => event.type === "task.end" && event.status === "error"));
});

Deno.test("session: wait() failing is an error; remove() failing is a warning", async () => {
  const { driver } = fakeDriver({
    start: (spec) =>
      Promise.resolve(
        handle(spec.id, Promise.reject(new Error("lost the container")), () =>
          Promise.reject(new Error("busy"))),
      ),
  });
  const { s, events } = session(driver);
  const result = await s.runTask(request());
  assert.equal(result.status, "error");
  assert.match(String(result.error), /lost the container/);
  assert.ok(events.some((event) => event.type === "warning" && /busy/.test(event.message)));
});

Deno.test("session: unclaimed capabilities and unknown secrets are clear errors before anything starts", async () => {
  const { driver, specs } = fakeDriver();
  const { s } = session(driver);
  const user = await s.runTask(request({ user: "nobody" }));
  assert.equal(user.status, "error");
  assert.match(String(user.error), /does not support user/);
  const secret = await s.runTask(request({ env: { X: { pocketciSecret: "MISSING" } } }));
  assert.match(String(secret.error), /--secret MISSING/);
  await assert.rejects(s.startSandbox(request()), /does not support sandboxes/);
  await assert.rejects(s.createVolume({ name: "c", kind: "cache" }), /does not support caches/);
  assert.equal(specs.length, 0);
});

Deno.test("session: an unclaimed capability's error carries the driver's reason when it gives one", async () => {
  const reason = "no cgroup v1 memory hierarchy is mounted; or use --driver=docker";
  const { driver, specs } = fakeDriver({
    unsupportedReasons: { limits: reason, sandboxes: "this host has no sandbox support" },
  });
  const { s } = session(driver);
  const limited = await s.runTask(request({ memoryBytes: 64 * 1024 * 1024 }));
  assert.equal(limited.status, "error");
  assert.equal(
    limited.error,
    `the native driver does not support limits: ${reason} (or remove .limits())`,
  );
  const cpu = await s.runTask(request({ cpu: 0.5 }));
  assert.match(String(cpu.error), /no cgroup v1 memory hierarchy/);
  await assert.rejects(
    s.startSandbox(request()),
    /does not support sandboxes: this host has no sandbox support \(or remove sandbox\(\)\)/,
  );
  // Without a reason for a capability, the generic hint stays.
  const user = await s.runTask(request({ user: "nobody" }));
  assert.equal(
    user.error,
    "the native driver does not support user: remove .user() or pick a driver that runs tasks as another user",
  );
  assert.equal(specs.length, 0);
});

Deno.test("session: after cancel, new tasks are cancelled without starting", async () => {
  const { driver, specs } = fakeDriver();
  const { s } = session(driver);
  s.cancel("stop");
  const result = await s.runTask(request());
  assert.equal(result.status, "cancelled");
  assert.equal(result.code, null);
  assert.equal(specs.length, 0);
  await assert.rejects(s.createVolume({ name: "v", kind: "volume" }));
});

Deno.test("session: the timeout starts when the task starts, not when it is requested", async () => {
  let stopped = false;
  const { driver } = fakeDriver({
    start: async (spec) => {
      await new Promise((resolve) => setTimeout(resolve, 300)); // slow start (image pull)
      let finish!: (status: ExitStatus) => void;
      const exit = new Promise<ExitStatus>((resolve) => finish = resolve);
      setTimeout(() => finish({ code: 0 }), 100);
      return {
        id: spec.id,
        wait: () => exit,
        stop: () => {
          stopped = true;
          finish({ code: 143, signal: 15 });
          return Promise.resolve();
        },
        remove: () => Promise.resolve(),
      };
    },
  });
  const { s } = session(driver);
  const result = await s.runTask(request({ timeoutMs: 250 }));
  assert.equal(result.status, "success");
  assert.equal(stopped, false);
});
