/**
 * Service conformance at the driver level: `startService` runs the server (the image's
 * ENTRYPOINT and CMD on container drivers), the runner's readiness wait (runner/readiness.ts)
 * works through the driver's `dial` and `exec`, a crash and a server that never gets ready
 * fail clearly, published ports are reachable on 127.0.0.1, and `stop()` and `close()` leave
 * nothing behind. Each driver's test file calls {@link defineServiceConformance}.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type Driver,
  type DriverContext,
  DriverError,
  type ServiceHandle,
  type ServiceSpec,
  type TaskSpec,
} from "../../drivers/contract.ts";
import { NotReadyError, probeOnce, waitReady } from "../../runner/readiness.ts";
import { createTestContext, type TestContext } from "./context.ts";
import { OutputCollector } from "./driver_suite.ts";

/** How to run the service checks against one driver. */
export interface ServiceConformanceOptions {
  /** The driver's name, used to prefix test names. */
  readonly name: string;
  /** Creates a driver bound to `ctx`. */
  readonly createDriver: (ctx: DriverContext) => Promise<Driver>;
  /** The port the server listens on inside the service (a free one on host drivers). */
  readonly port: () => Promise<number>;
  /**
   * A server on `port` that prints `listening` after `delayS` seconds and then serves a page
   * reading `served` over HTTP.
   */
  readonly server: (port: number, delayS: number) => Partial<ServiceSpec>;
  /** A service that prints `about to crash` and exits with code 3 after `delayS` seconds. */
  readonly crash: (delayS: number) => Partial<ServiceSpec>;
  /** A service that runs but never listens. */
  readonly silent: () => Partial<ServiceSpec>;
  /** Only drivers that run images: the image's own ENTRYPOINT and CMD serve on `port`. */
  readonly imageDefaults?: {
    readonly spec: Partial<ServiceSpec>;
    readonly port: number;
    /** A line the entrypoint prints, naming the CMD it got. */
    readonly printed: string;
  };
  /** Drivers with a network: a task that fetches `url` (`http://name:port/`) and prints it. */
  readonly fetchTask?: (url: string) => Partial<TaskSpec>;
  /**
   * Whether `ports` are published on this host (default true). A driver whose services live
   * where this host cannot reach them (k8s) must refuse them with a `DriverError` of code
   * `invalid` naming `.ports(`.
   */
  readonly publishesPorts?: boolean;
  /** Lists what is left of a service after `stop()` (containers, processes); must be empty. */
  readonly remains: (ctx: TestContext, handle: ServiceHandle) => Promise<string[]>;
}

/** Reads one HTTP answer's body from `127.0.0.1:port` (on the runner's host). */
export async function fetchLocal(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/`);
  return await response.text();
}

/** Registers the service conformance tests for one driver. */
export function defineServiceConformance(options: ServiceConformanceOptions): void {
  let counter = 0;
  const serviceSpec = (extra: Partial<ServiceSpec>): ServiceSpec => {
    const id = `s${++counter}-${crypto.randomUUID().slice(0, 6)}`;
    return { id, name: `svc${counter}`, env: {}, mounts: [], ports: [], ...extra };
  };
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({ name: `${options.name} services: ${name}`, fn });

  const withDriver = async (body: (driver: Driver, ctx: TestContext) => Promise<void>) => {
    const ctx = await createTestContext();
    const driver = await options.createDriver(ctx);
    try {
      await body(driver, ctx);
    } finally {
      const report = await driver.close();
      try {
        assert.deepEqual(report.failed, [], "close() could not remove everything");
        assert.deepEqual([...ctx.live.values()], [], "resources still recorded after close()");
      } finally {
        await ctx.dispose();
      }
    }
  };

  const start = async (driver: Driver, spec: ServiceSpec) => {
    const output = new OutputCollector();
    assert.ok(driver.startService, `${options.name} implements startService`);
    const handle = await driver.startService(spec, output.sink);
    return { handle, output };
  };

  const ready = (
    handle: ServiceHandle,
    probe: Parameters<typeof probeOnce>[1],
    timeoutMs = 15_000,
  ) =>
    waitReady(handle, {
      probe,
      timeoutMs,
      intervalMs: 100,
      exited: handle.wait(),
      signal: new AbortController().signal,
    });

  test("readiness waits for a slow server: tcp fails before it listens, then passes", async () => {
    await withDriver(async (driver) => {
      const port = await options.port();
      const { handle, output } = await start(driver, serviceSpec(options.server(port, 1.5)));
      const started = performance.now();
      // Nothing listens yet: a probe that went through a proxy would pass here.
      await assert.rejects(
        () => probeOnce(handle, { tcp: port }, AbortSignal.timeout(3000)),
        "the tcp probe fails before the server listens",
      );
      await ready(handle, { tcp: port });
      const waited = performance.now() - started;
      assert.ok(waited >= 1000, `ready after ${Math.round(waited)} ms, before the server listened`);
      assert.match(output.stdout + output.stderr, /listening/);
      await probeOnce(handle, { http: `http://localhost:${port}/` }, AbortSignal.timeout(3000));
      await handle.stop(2000);
    });
  });

  test("an http probe needs a 2xx/3xx answer; an exec probe needs exit 0", async () => {
    await withDriver(async (driver) => {
      const port = await options.port();
      const { handle } = await start(driver, serviceSpec(options.server(port, 0)));
      await ready(handle, { http: `http://localhost:${port}/` });
      await assert.rejects(
        () =>
          probeOnce(
            handle,
            { http: `http://localhost:${port}/missing` },
            AbortSignal.timeout(3000),
          ),
        /status 404/,
      );
      await probeOnce(handle, { exec: ["sh", "-c", "exit 0"] }, AbortSignal.timeout(5000));
      await assert.rejects(
        () => probeOnce(handle, { exec: ["sh", "-c", "exit 4"] }, AbortSignal.timeout(5000)),
        /exit code 4/,
      );
      await handle.stop(2000);
    });
  });

  test("a service that crashes fails the wait with its exit code; its last line was delivered", async () => {
    await withDriver(async (driver) => {
      const { handle, output } = await start(driver, serviceSpec(options.crash(0.3)));
      const error = await ready(handle, { tcp: 9 }).then(() => undefined, (e) => e);
      assert.ok(error instanceof NotReadyError, String(error));
      assert.equal(error.reason, "exited");
      assert.match(error.message, /exited with code 3 before tcp port 9 passed/);
      assert.equal((await handle.wait()).code, 3);
      assert.match(output.stdout, /about to crash/);
      await handle.stop(1000);
    });
  });

  test("a service that never gets ready fails at the timeout, naming the probe", async () => {
    await withDriver(async (driver) => {
      const { handle } = await start(driver, serviceSpec(options.silent()));
      const started = performance.now();
      const error = await ready(handle, { tcp: 4567 }, 1500).then(() => undefined, (e) => e);
      const took = performance.now() - started;
      assert.ok(error instanceof NotReadyError, String(error));
      assert.equal(error.reason, "timeout");
      assert.match(error.message, /tcp port 4567 did not pass within 1500 ms \(last attempt: .+\)/);
      assert.ok(took >= 1400 && took < 6000, `gave up after ${Math.round(took)} ms`);
      await handle.stop(1000);
    });
  });

  if (options.publishesPorts === false) {
    test("ports to publish on this host are refused with a clear error", async () => {
      await withDriver(async (driver) => {
        const port = await options.port();
        await assert.rejects(
          () => start(driver, serviceSpec({ ...options.server(port, 0), ports: [port] })),
          (error: unknown) =>
            error instanceof DriverError && error.code === "invalid" &&
            error.message.includes(".ports(") && !error.message.includes("\n"),
        );
      });
    });
  } else {
    test("a published port is reachable on 127.0.0.1 at hostPort()", async () => {
      await withDriver(async (driver) => {
        const port = await options.port();
        const { handle } = await start(
          driver,
          serviceSpec({ ...options.server(port, 0), ports: [port] }),
        );
        await ready(handle, { tcp: port });
        const hostPort = handle.hostPort(port);
        assert.ok(hostPort !== undefined && hostPort > 0, "the port is published");
        assert.equal(handle.hostPort(port + 1), undefined, "an unlisted port is not");
        assert.equal((await fetchLocal(hostPort)).trim(), "served");
        await handle.stop(2000);
      });
    });
  }

  test("stop() ends the service and removes it; close() stops one left running", async () => {
    await withDriver(async (driver, ctx) => {
      const port = await options.port();
      const { handle } = await start(driver, serviceSpec(options.server(port, 0)));
      await ready(handle, { tcp: port });
      await handle.stop(2000);
      await handle.stop(2000); // safe twice
      assert.deepEqual(await options.remains(ctx, handle), []);
      await assert.rejects(() => probeOnce(handle, { tcp: port }, AbortSignal.timeout(500)));
    });
    let left: { ctx: TestContext; handle: ServiceHandle } | undefined;
    const ctx = await createTestContext();
    try {
      const driver = await options.createDriver(ctx);
      const port = await options.port();
      const { handle } = await start(driver, serviceSpec(options.server(port, 0)));
      await ready(handle, { tcp: port });
      left = { ctx, handle };
      const report = await driver.close();
      assert.deepEqual(report.failed, []);
      assert.deepEqual(await options.remains(ctx, handle), [], "close() stopped the service");
      assert.deepEqual([...ctx.live.values()], []);
    } finally {
      if (left === undefined) await ctx.dispose();
      else await left.ctx.dispose();
    }
  });

  const defaults = options.imageDefaults;
  if (defaults !== undefined) {
    test("the image's ENTRYPOINT and CMD run unchanged; run() replaces only the CMD", async () => {
      await withDriver(async (driver) => {
        const plain = await start(driver, serviceSpec(defaults.spec));
        await ready(plain.handle, { http: `http://localhost:${defaults.port}/` });
        assert.match(plain.output.stdout, new RegExp(defaults.printed));
        await plain.handle.stop(2000);
        const other = defaults.port + 1;
        const replaced = await start(
          driver,
          serviceSpec({ ...defaults.spec, command: [String(other)] }),
        );
        await ready(replaced.handle, { http: `http://localhost:${other}/` });
        assert.match(replaced.output.stdout, new RegExp(`entrypoint ran with CMD ${other}`));
        await replaced.handle.stop(2000);
      });
    });
  }

  const fetchTask = options.fetchTask;
  if (fetchTask !== undefined) {
    test("a task reaches the service by its name", async () => {
      await withDriver(async (driver) => {
        const port = await options.port();
        const spec = serviceSpec({ ...options.server(port, 0), name: "named-web" });
        const { handle } = await start(driver, spec);
        await ready(handle, { tcp: port });
        const output = new OutputCollector();
        const task = await driver.startTask({
          id: `fetch-${crypto.randomUUID().slice(0, 6)}`,
          name: "fetch",
          command: [],
          env: {},
          mounts: [],
          ...fetchTask(`http://named-web:${port}/`),
        }, output.sink);
        const status = await task.wait();
        await task.remove();
        assert.equal(status.code, 0, output.stderr);
        assert.equal(output.stdout.trim(), "served");
        await handle.stop(2000);
      });
    });
  }
}
