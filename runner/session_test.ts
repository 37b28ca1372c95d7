import assert from "node:assert/strict";
import {
  type Driver,
  DriverError,
  type ExitStatus,
  type TaskHandle,
  type TaskSpec,
} from "../drivers/contract.ts";
import { task } from "../dsl/task.ts";
import { sandbox } from "../dsl/sandbox.ts";
import { cache, volume } from "../dsl/volume.ts";
import { MAX_STDIN_BYTES } from "../dsl/validate.ts";
import type { RunEvent } from "./events.ts";
import { Masker } from "./mask.ts";
import { RunSession, type SessionOptions } from "./session.ts";

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

function session(
  driver: Driver,
  secrets: Record<string, string> = {},
  extra: Partial<SessionOptions> = {},
) {
  const events: RunEvent[] = [];
  const s = new RunSession({
    ...extra,
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

/** The message a DSL call throws (it must throw). */
function dslError(call: () => unknown): string {
  try {
    call();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("the DSL accepted it");
}

async function dslRejection(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("the DSL accepted it");
}

Deno.test("session: requests that bypass the DSL are refused with the DSL's own errors", async () => {
  const { driver, specs } = fakeDriver();
  const { s, events } = session(driver, { TOKEN: "tok-secret-1" });
  const refusals: [Record<string, unknown>, string][] = [
    [{ env: { "": "x" } }, dslError(() => task("t").env({ "": "x" }))],
    [{ env: { A: 1 } }, dslError(() => task("t").env({ A: 1 as unknown as string }))],
    [
      { env: { A: { pocketciSecret: "../x" } } },
      dslError(() => task("t").env({ A: { pocketciSecret: "../x" } })),
    ],
    [{ env: "A=1" }, dslError(() => task("t").env("A=1" as unknown as Record<string, string>))],
    [{ name: "" }, dslError(() => task(""))],
    [{ name: 7 }, dslError(() => task(7 as unknown as string))],
    [{ command: [] }, await dslRejection(() => task("t").run(undefined as unknown as string))],
    [{ command: [""] }, await dslRejection(() => task("t").run(""))],
    [{ command: ["ls", 5] }, await dslRejection(() => task("t").run("ls", 5 as unknown as string))],
    [{ command: "ls" }, await dslRejection(() => task("t").run(undefined as unknown as string))],
    [{ timeoutMs: -1 }, dslError(() => task("t").timeout(-1))],
    [{ timeoutMs: NaN }, dslError(() => task("t").timeout(NaN))],
    [{ timeoutMs: "soon" }, dslError(() => task("t").timeout("soon"))],
    [{ cpu: 0 }, dslError(() => task("t").limits({ cpu: 0 }))],
    [{ memoryBytes: 1.5 }, dslError(() => task("t").limits({ memory: 1.5 }))],
    [{ workDir: "" }, dslError(() => task("t").workDir(""))],
    [{ user: "" }, dslError(() => task("t").user(""))],
    [{ privileged: "yes" }, dslError(() => task("t").privileged("yes" as unknown as boolean))],
    [{ pull: "sometimes" }, dslError(() => task("t").pull("sometimes" as "always"))],
    [{ image: 5 }, dslError(() => task("t").image(5 as unknown as string))],
    [{ platform: "" }, dslError(() => task("t").platform(""))],
    [{ entrypoint: [1] }, dslError(() => task("t").entrypoint(1 as unknown as string))],
    [{ stdin: "text" }, "stdin() needs a string or a Uint8Array"],
    [
      { stdin: new Uint8Array(MAX_STDIN_BYTES + 1) },
      dslError(() => task("t").stdin(new Uint8Array(MAX_STDIN_BYTES + 1))),
    ],
    [
      { mounts: [{ volumeId: "v", path: "../etc" }] },
      'invalid mount path "../etc": ".." is not allowed',
    ],
    [{ mounts: [{ volumeId: "v", path: "" }] }, 'mount() needs a path, such as mount(src, "src")'],
    [{ mounts: [{ path: "x" }] }, "mount() needs a volume from volume() or cache()"],
  ];
  for (const [fields, message] of refusals) {
    await assert.rejects(s.runTask(request(fields)), (error: Error) => {
      assert.equal(error.message, message, Object.keys(fields).join());
      return true;
    });
  }
  await assert.rejects(s.runTask(null as never), /pipeline code must use the pocketci DSL/);
  await assert.rejects(s.startSandbox(request({ name: "" })), (error: Error) => {
    assert.equal(error.message, dslError(() => sandbox("")));
    return true;
  });
  await assert.rejects(
    s.startSandbox(request({ env: { "": "x" } })),
    /invalid environment variable name ""/,
  );
  await assert.rejects(
    s.execSandbox("sandbox-1", { command: ["ls"], env: { "a-b": "x" } }),
    /invalid environment variable name "a-b"/,
  );
  await assert.rejects(s.execSandbox(5 as never, { command: ["ls"] }), /invalid sandbox ID/);
  for (
    const [bad, message] of [
      [{ name: "", kind: "volume" }, await dslRejection(() => volume(""))],
      [{ name: "../etc", kind: "cache" }, await dslRejection(() => cache("../etc"))],
      [
        { name: "v", kind: "volume", from: 42 },
        await dslRejection(() => volume("v", { from: 42 as never })),
      ],
      [
        { name: "v", kind: "disk" },
        "invalid volume request: pipeline code must use volume() or cache()",
      ],
    ] as const
  ) {
    await assert.rejects(s.createVolume(bad as never), (error: Error) => {
      assert.equal(error.message, message);
      return true;
    });
  }
  await assert.rejects(s.readFile(7 as never, "x"), /invalid volume ID/);
  await assert.rejects(s.closeSandbox({} as never), /invalid sandbox ID/);
  assert.equal(specs.length, 0);
  assert.ok(!events.some((event) => event.type === "task.start"));
  // A valid request still runs.
  assert.equal((await s.runTask(request({ env: { A: "b" } }))).status, "success");
});

Deno.test("session: an error cut at 500 characters never shows part of a secret (any name length)", async () => {
  const secret = "Zq9-secret-Vv7w";
  const { driver } = fakeDriver({
    start: (spec) => Promise.reject(new Error(`cannot start ${spec.name}: ${spec.env.TOKEN} bad`)),
  });
  const { s, events } = session(driver, { TOKEN: secret });
  const base = "cannot start ".length + 2;
  for (let straddle = 0; straddle <= secret.length; straddle++) {
    const name = "n".repeat(500 - base - straddle);
    const result = await s.runTask(
      request({ name, env: { TOKEN: { pocketciSecret: "TOKEN" } } }),
    );
    assert.equal(result.status, "error");
    for (const text of [String(result.error), JSON.stringify(events)]) {
      for (let length = 3; length <= secret.length; length++) {
        assert.ok(!text.includes(secret.slice(0, length)), `straddle ${straddle}: ${result.error}`);
      }
    }
  }
});

Deno.test("session: task IDs come from the masked name, so a cut name never carries part of a secret", async () => {
  const secret = "tok-secret-value-123";
  const { driver } = fakeDriver();
  const { s, events } = session(driver, { TOKEN: secret });
  const result = await s.runTask(request({ name: "x".repeat(30) + secret }));
  assert.ok(!result.id.includes("tok"), result.id);
  for (const event of events) assert.ok(!("id" in event) || !event.id.includes("tok"), event.type);
});

Deno.test("session: .privileged() needs --allow-privileged on every driver; the driver is never asked without it", async () => {
  let sandboxStarts = 0;
  const { driver, specs } = fakeDriver({ capabilities: { privileged: true, sandboxes: true } });
  driver.startSandbox = () => {
    sandboxStarts++;
    return Promise.reject(new Error("unused"));
  };
  const { s, events } = session(driver);
  const task = await s.runTask(request({ privileged: true }));
  assert.equal(task.status, "error");
  assert.equal(
    task.error,
    ".privileged() needs the operator's grant: pass --allow-privileged to pocketci run (or remove .privileged())",
  );
  await assert.rejects(s.startSandbox(request({ privileged: true })), /--allow-privileged/);
  assert.equal(specs.length, 0);
  assert.equal(sandboxStarts, 0);
  assert.ok(events.some((event) => event.type === "task.end" && event.status === "error"));
  // A driver without the capability still says so once the grant is there.
  const native = fakeDriver();
  const granted = session(native.driver, {}, { allowPrivileged: true });
  assert.match(
    String((await granted.s.runTask(request({ privileged: true }))).error),
    /does not support privileged/,
  );
  const docker = fakeDriver({ capabilities: { privileged: true } });
  const ok = session(docker.driver, {}, { allowPrivileged: true });
  assert.equal((await ok.s.runTask(request({ privileged: true }))).status, "success");
  assert.equal(docker.specs[0].privileged, true);
});

Deno.test("session: a malformed image is the task's error before any driver call, on every driver", async () => {
  const { driver, specs } = fakeDriver({ capabilities: { sandboxes: true } });
  let sandboxStarts = 0;
  driver.startSandbox = () => {
    sandboxStarts++;
    return Promise.reject(new Error("unused"));
  };
  const { s } = session(driver);
  for (const image of ["/etc/passwd", "busybox; rm", "BusyBox", "a//b", " busybox"]) {
    const result = await s.runTask(request({ image }));
    assert.equal(result.status, "error", image);
    assert.equal(result.code, null);
    assert.match(String(result.error), /is not a valid image reference/);
    assert.ok(String(result.error).includes(JSON.stringify(image)), "names the image");
    assert.doesNotMatch(String(result.error), /DSN|host parameter|engine/);
  }
  await assert.rejects(s.startSandbox(request({ image: "/etc/passwd" })), /valid image reference/);
  assert.equal(specs.length, 0);
  assert.equal(sandboxStarts, 0);
  assert.equal((await s.runTask(request({ image: "ghcr.io/org/app:v1" }))).status, "success");
});

Deno.test("session: unawaited() names unfinished tasks and calls that neither run in the background nor may fail", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const { driver } = fakeDriver({
    start: (spec) => Promise.resolve(handle(spec.id, gate.then(() => ({ code: 0 })))),
  });
  const { s } = session(driver);
  const running = [
    s.runTask(request({ name: "forgotten" })),
    s.runTask(request({ name: "bg", background: true })),
    s.runTask(request({ name: "may-fail", allowFailure: true })),
  ];
  assert.deepEqual(s.unawaited(), ["forgotten"]);
  release();
  await Promise.all(running);
  assert.deepEqual(s.unawaited(), [], "finished tasks are not listed");
  const failed = await s.runTask(request({ name: "bad", image: "/etc/passwd" }));
  assert.equal(failed.status, "error");
  assert.deepEqual(s.unawaited(), [], "a task that could not run is finished");
  await assert.rejects(
    s.runTask(request({ background: "yes" })),
    /background\(\) takes true or false/,
  );
});

Deno.test("session: a task cancelled before it started emits no start; a started one reports its total time", async () => {
  const { driver } = fakeDriver({
    start: async (spec) => {
      await new Promise((resolve) => setTimeout(resolve, 60)); // pull and create
      return handle(spec.id, Promise.resolve({ code: 0 }));
    },
  });
  const { s, events } = session(driver);
  const ran = await s.runTask(request({ name: "ran" }));
  s.cancel("stop");
  const skipped = await s.runTask(request({ name: "late" }));
  assert.equal(skipped.status, "cancelled");
  const starts = events.filter((event) => event.type === "task.start").map((event) => event.id);
  assert.deepEqual(starts, [ran.id]);
  const ends = events.filter((event) => event.type === "task.end");
  const ranEnd = ends.find((event) => event.id === ran.id);
  const lateEnd = ends.find((event) => event.id === skipped.id);
  assert.ok(ranEnd?.type === "task.end" && ranEnd.totalMs !== undefined);
  assert.ok(ranEnd.totalMs >= 55, `total ${ranEnd.totalMs} ms includes the start`);
  assert.ok(ranEnd.durationMs < ranEnd.totalMs, "the run's duration leaves the start out");
  assert.ok(lateEnd?.type === "task.end" && lateEnd.totalMs === undefined);
});
