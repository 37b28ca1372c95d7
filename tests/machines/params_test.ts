/**
 * Every parameter of the digitalocean and hetzner drivers reaches the provider as the spec says,
 * resolved from a DSN and from environment variables (`resolveDsn`), through the registry
 * factory's configuration mapping: image, size/server_type (and `auto`), region/location,
 * disk_size (a volume of that size, mounted by cloud-init as Docker's data root), tags/labels, and
 * the pool and timeout durations; plus the auto-size tables and the capacity check.
 *
 * @module
 */

import assert from "node:assert/strict";
import { buildUserData, DOCKER_DATA_ROOT } from "../../drivers/machines/cloud_init.ts";
import { createMachineDriver, poolSettings } from "../../drivers/machines/factory.ts";
import { generateKeyPair } from "../../drivers/machines/keys.ts";
import { capacityOf, digitalOceanSize, hetznerServerType } from "../../drivers/machines/sizing.ts";
import { resolveDsn } from "../../dsn/resolve.ts";
import { createTestContext } from "../conformance/context.ts";
import { OutputCollector } from "../conformance/driver_suite.ts";
import { FakeDigitalOcean } from "../fakes/cloud/digitalocean.ts";
import { FakeHetzner } from "../fakes/cloud/hetzner.ts";
import { parseCloudConfig } from "../fakes/cloud/machine_host.ts";
import { ignore, problem } from "./harness.ts";

const GIB = 1024 ** 3;

Deno.test("size=auto follows DigitalOcean's table exactly, first match wins", () => {
  const cases: [number, number, string][] = [
    [0, 0, "s-1vcpu-1gb"],
    [1, 0.5 * GIB, "s-1vcpu-1gb"],
    [1, 0.5 * GIB + 1, "s-1vcpu-2gb"],
    [1, 1 * GIB + 1, "s-2vcpu-2gb"],
    [1.5, 0, "s-2vcpu-4gb"],
    [1, 2 * GIB + 1, "s-2vcpu-4gb"],
    [2.5, 0, "s-4vcpu-8gb"],
    [1, 4 * GIB + 1, "s-4vcpu-8gb"],
    [4.1, 0, "s-8vcpu-16gb"],
    [1, 8 * GIB + 1, "s-8vcpu-16gb"],
  ];
  for (const [cpu, memoryBytes, size] of cases) {
    assert.equal(digitalOceanSize({ cpu, memoryBytes }), size, `${cpu} CPU ${memoryBytes} B`);
  }
});

Deno.test("server_type=auto follows Hetzner's table exactly, first match wins", () => {
  const cases: [number, number, string][] = [
    [0, 0, "cx23"],
    [2, 4 * GIB, "cx23"],
    [2.5, 0, "cx33"],
    [0, 4 * GIB + 1, "cx33"],
    [4.5, 0, "cx43"],
    [0, 8 * GIB + 1, "cx43"],
    [8.5, 0, "cx53"],
    [0, 16 * GIB + 1, "cx53"],
  ];
  for (const [cpu, memoryBytes, type] of cases) {
    assert.equal(hetznerServerType({ cpu, memoryBytes }), type, `${cpu} CPU ${memoryBytes} B`);
  }
  assert.deepEqual(capacityOf("cx33"), { cpu: 4, memoryBytes: 8 * GIB });
  assert.equal(capacityOf("custom-type"), undefined);
});

Deno.test("user_data carries the generated host key and mounts the data volume as Docker's root", () => {
  const hostKey = generateKeyPair("host");
  const config = parseCloudConfig(buildUserData({ hostKey, dataDevice: "/dev/disk/by-id/x" }))!;
  assert.equal(config.ssh_keys?.ed25519_private, hostKey.privateKey);
  assert.equal(config.ssh_keys?.ed25519_public, hostKey.publicKey);
  assert.deepEqual((config.mounts as string[][])[0].slice(0, 2), [
    "/dev/disk/by-id/x",
    DOCKER_DATA_ROOT,
  ]);
  const files = config.write_files as { path: string; content: string }[];
  assert.deepEqual(JSON.parse(files[0].content), { "data-root": DOCKER_DATA_ROOT });
  assert.equal(parseCloudConfig(buildUserData({ hostKey }))!.mounts, undefined);
});

Deno.test("pool settings come from the resolved DSN and its environment variables", () => {
  const env = {
    DIGITALOCEAN_TOKEN: "t",
    DIGITALOCEAN_POLL_INTERVAL: "3s",
    DIGITALOCEAN_WAIT_TIMEOUT: "0",
    DIGITALOCEAN_SSH_TIMEOUT: "7m",
    DIGITALOCEAN_DOCKER_TIMEOUT: "8m",
    DIGITALOCEAN_IDLE_TIMEOUT: "45m",
    DIGITALOCEAN_MAX_WORKERS: "4",
    DIGITALOCEAN_REUSE_WORKER: "true",
  };
  const dsn = resolveDsn("digitalocean", { env, cwd: "/tmp" });
  const s = poolSettings("digitalocean", dsn.config);
  assert.deepEqual(
    [s.pollIntervalMs, s.waitTimeoutMs, s.sshTimeoutMs, s.dockerTimeoutMs, s.idleTimeoutMs],
    [3_000, 0, 420_000, 480_000, 2_700_000],
  );
  assert.equal(s.maxWorkers, 4);
  assert.equal(s.reuseWorker, true);
  const h = poolSettings(
    "hetzner",
    resolveDsn("hetzner:token=t,poll_interval=2s,wait_timeout=30m,idle_timeout=1h", {
      env: { HETZNER_SSH_TIMEOUT: "9m", HETZNER_DOCKER_TIMEOUT: "6m" },
      cwd: "/tmp",
    }).config,
  );
  assert.deepEqual(
    [h.pollIntervalMs, h.waitTimeoutMs, h.sshTimeoutMs, h.dockerTimeoutMs, h.idleTimeoutMs],
    [2_000, 1_800_000, 540_000, 360_000, 3_600_000],
  );
});

function machineTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: `machines: ${name}`,
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      if (problem) throw new Error(problem);
      await fn();
    },
  });
}

machineTest(
  "digitalocean: image, size=auto, region, disk_size and tags reach the API",
  async () => {
    const fake = new FakeDigitalOcean();
    Deno.env.set("DIGITALOCEAN_API_URL", fake.url);
    const ctx = await createTestContext({ namespace: "ns-params" });
    try {
      const dsn = resolveDsn(
        "digitalocean:image=docker-24-04,size=auto,disk_size=50,tags=prod,my.app",
        { env: { DIGITALOCEAN_TOKEN: fake.token, DIGITALOCEAN_REGION: "sfo3" }, cwd: "/tmp" },
      );
      const driver = createMachineDriver("digitalocean", dsn.config, ctx, () => {});
      const out = new OutputCollector();
      const task = await driver.startTask({
        id: "t1",
        name: "big",
        image: "busybox:latest",
        command: ["true"],
        env: {},
        mounts: [],
        limits: { cpu: 1, memoryBytes: 2 * GIB + 1 },
      }, out.sink);
      assert.equal((await task.wait()).code, 0);
      const [droplet] = fake.droplets.values();
      assert.equal(droplet.image, "docker-24-04");
      assert.equal(droplet.size, "s-2vcpu-4gb", "over 2 GiB of memory picks s-2vcpu-4gb");
      assert.equal(droplet.region, "sfo3");
      const [volume] = fake.volumes.values();
      assert.equal(volume.size, 50);
      assert.deepEqual([...droplet.volumeIds], [volume.id]);
      for (
        const tag of [
          "ci",
          "namespace-ns-params",
          "ci-worker-ns-params",
          "ci-busy-ns-params",
          "prod",
          "my-app",
        ]
      ) {
        assert.ok(droplet.tags.has(tag), `missing tag ${tag}: ${[...droplet.tags]}`);
      }
      assert.ok(parseCloudConfig(droplet.userData)?.mounts, "the volume is mounted by cloud-init");
      await assert.rejects(
        driver.startTask({
          id: "t2",
          name: "huge",
          image: "busybox:latest",
          command: ["true"],
          env: {},
          mounts: [],
          limits: { cpu: 3 },
        }, out.sink),
        /task "huge" asks for 3 CPUs .*size=s-2vcpu-4gb: 2 CPUs.*choose a larger size= or size=auto/,
      );
      await driver.close();
      assert.equal(fake.droplets.size + fake.volumes.size + fake.keys.size, 0);
    } finally {
      await ctx.dispose();
      await fake.close();
    }
  },
);

machineTest(
  "hetzner: image, server_type, location, disk_size and labels reach the API",
  async () => {
    const fake = new FakeHetzner();
    Deno.env.set("HETZNER_API_URL", fake.url);
    const ctx = await createTestContext({ namespace: "ns-params" });
    try {
      const dsn = resolveDsn(
        "hetzner:image=ubuntu-24.04,location=fsn1,disk_size=20,labels=env=prod,app=x",
        { env: { HETZNER_TOKEN: fake.token, HETZNER_SERVER_TYPE: "cx33" }, cwd: "/tmp" },
      );
      const driver = createMachineDriver("hetzner", dsn.config, ctx, () => {});
      await driver.createVolume({ name: "v", kind: "volume" });
      const [server] = fake.servers.values();
      assert.equal(server.image, "ubuntu-24.04");
      assert.equal(server.serverType, "cx33");
      assert.equal(server.location, "fsn1");
      const [volume] = fake.volumes.values();
      assert.equal(volume.size, 20);
      assert.equal(volume.server, server.id);
      assert.deepEqual(
        { ...server.labels, "ci-run": "", "ci-key": "" },
        {
          env: "prod",
          app: "x",
          ci: "true",
          namespace: "ns-params",
          "ci-worker": "ns-params",
          "ci-worker-status": "busy",
          "ci-run": "",
          "ci-key": "",
        },
      );
      await driver.close();
      assert.equal(fake.servers.size + fake.volumes.size + fake.keys.size, 0);
    } finally {
      await ctx.dispose();
      await fake.close();
    }
  },
);

Deno.test("the API client's errors name the status and a fix, never the token", async () => {
  const fake = new FakeHetzner({ token: "right-token" });
  try {
    const { ApiClient } = await import("../../drivers/machines/api_client.ts");
    const api = new ApiClient({ provider: "Hetzner", baseUrl: fake.url, token: "wrong-SECRET" });
    await assert.rejects(api.request("GET", "/servers"), (error: Error) => {
      assert.match(error.message, /401 unauthorized.*check the API token/);
      assert.doesNotMatch(error.message, /SECRET/);
      return true;
    });
    const ok = new ApiClient({ provider: "Hetzner", baseUrl: fake.url, token: "right-token" });
    fake.remaining = 100;
    await ok.request("GET", "/servers");
    assert.equal(ok.budget?.limit, 3600);
    assert.equal(ok.budgetLow, true, "99 of 3600 left is low");
    assert.equal(ok.pollDelay(10_000), 60_000);
    fake.remaining = 3000;
    await ok.request("GET", "/servers");
    assert.equal(ok.pollDelay(10_000), 10_000);
  } finally {
    await fake.close();
  }
});

Deno.test("permissions: net for the API host and SSH to machines (say why it is not narrowed), the state dir", async () => {
  const { machinePermissions } = await import("../../drivers/machines/factory.ts");
  const previous = Deno.env.get("HETZNER_API_URL");
  const previousDo = Deno.env.get("DIGITALOCEAN_API_URL");
  Deno.env.delete("DIGITALOCEAN_API_URL"); // an earlier test in this file pointed it at a fake
  Deno.env.set("HETZNER_API_URL", "http://proxy.example:8080/v1");
  try {
    const needs = machinePermissions("hetzner");
    const net = needs.find((n) => n.permission === "net")!;
    assert.equal(net.values, true);
    assert.match(net.reason, /proxy\.example:8080.*SSH \(port 22\).*addresses exist only once/);
    for (const permission of ["read", "write"] as const) {
      const need = needs.find((n) => n.permission === permission)!;
      assert.ok(Array.isArray(need.values) && need.values.length === 1, permission);
    }
  } finally {
    if (previous === undefined) Deno.env.delete("HETZNER_API_URL");
    else Deno.env.set("HETZNER_API_URL", previous);
  }
  assert.match(machinePermissions("digitalocean")[0].reason, /api\.digitalocean\.com/);
  if (previousDo !== undefined) Deno.env.set("DIGITALOCEAN_API_URL", previousDo);
});
