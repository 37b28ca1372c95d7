/**
 * The service conformance checks against the local Docker engine: services are containers on
 * the run's network, found by name from tasks, probed at their own address.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dockerFactory } from "../../drivers/docker/factory.ts";
import { LABEL } from "../../drivers/docker/labels.ts";
import { openEngine } from "../../drivers/docker/engine.ts";
import { resolveEngineAddress } from "../../drivers/docker/engine_address.ts";
import { assertEngine, ignoreDocker, TEST_IMAGE } from "../docker/engine_fixture.ts";
import { defineServiceConformance } from "./service_suite.ts";
import { BUSYBOX_SERVICES } from "./docker_service_helpers.ts";

Deno.test({
  name: "docker services: the local engine answers and the test image exists",
  ignore: ignoreDocker,
  fn: assertEngine,
});

if (!ignoreDocker) {
  defineServiceConformance({
    name: "docker",
    createDriver: (ctx) => dockerFactory.create({}, ctx),
    ...BUSYBOX_SERVICES,
    remains: async (_ctx, handle) => {
      const engine = await openEngine(resolveEngineAddress(undefined, Deno.env.toObject()));
      try {
        const containers = await engine.docker.listContainers({
          all: true,
          filters: { label: [`${LABEL.task}=${handle.id}`] },
        });
        return containers.map((container) => container.Id);
      } finally {
        await engine.close();
      }
    },
  });
}

/** An IPv4 address of this machine other than loopback (the engine's bridges excluded). */
function externalAddress(): string | undefined {
  return Deno.networkInterfaces().find((iface) =>
    iface.family === "IPv4" && !iface.address.startsWith("127.") &&
    !/^(docker|br-|veth)/.test(iface.name)
  )?.address;
}

Deno.test({
  name: "docker services: ports are published on 127.0.0.1 only, never on the machine's network",
  ignore: ignoreDocker,
  fn: async () => {
    const { createTestContext } = await import("./context.ts");
    const { waitReady } = await import("../../runner/readiness.ts");
    const ctx = await createTestContext();
    const driver = await dockerFactory.create({}, ctx);
    try {
      const handle = await driver.startService!({
        id: `sec-${crypto.randomUUID().slice(0, 6)}`,
        name: "exposed",
        image: TEST_IMAGE,
        command: [
          "sh",
          "-c",
          "mkdir -p /www; echo served > /www/index.html; exec httpd -f -p 8080 -h /www",
        ],
        env: {},
        mounts: [],
        ports: [8080],
      }, () => {});
      await waitReady(handle, {
        probe: { tcp: 8080 },
        timeoutMs: 15_000,
        intervalMs: 100,
        exited: handle.wait(),
        signal: new AbortController().signal,
      });
      const hostPort = handle.hostPort(8080)!;
      const engine = await openEngine(resolveEngineAddress(undefined, Deno.env.toObject()));
      try {
        const [info] = await engine.docker.listContainers({
          filters: { label: [`${LABEL.task}=${handle.id}`] },
        });
        const bindings = info.Ports.filter((port) => port.PrivatePort === 8080);
        assert.ok(bindings.length > 0, "the port is published");
        for (const binding of bindings) assert.equal(binding.IP, "127.0.0.1");
      } finally {
        await engine.close();
      }
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: hostPort });
      conn.close();
      const external = externalAddress();
      assert.ok(external, "this machine has a non-loopback IPv4 address to test with");
      await assert.rejects(
        () => Deno.connect({ hostname: external, port: hostPort }),
        `port ${hostPort} is not reachable on ${external}`,
      );
      await handle.stop(2000);
    } finally {
      await driver.close();
      await ctx.dispose();
    }
  },
});
