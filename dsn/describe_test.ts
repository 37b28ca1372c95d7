import assert from "node:assert/strict";
import { describeDrivers } from "./describe.ts";
import { driverTableMarkdown, normalizeTables, tableInReadme, withDriverTable } from "./readme.ts";
import { DRIVER_NAMES } from "./types.ts";

// The spec's parameter tables and environment-variable lists, per driver.
const SPEC_PARAMETERS: Record<string, Record<string, string | null>> = {
  native: {},
  docker: { host: "DOCKER_HOST" },
  k8s: {
    namespace: null,
    kubeconfig: "KUBECONFIG",
    start_timeout: null,
    storage_class: null,
    volume_size: null,
    create_namespace: null,
  },
  digitalocean: {
    token: "DIGITALOCEAN_TOKEN",
    image: "DIGITALOCEAN_IMAGE",
    size: "DIGITALOCEAN_SIZE",
    region: "DIGITALOCEAN_REGION",
    disk_size: "DIGITALOCEAN_DISK_SIZE",
    tags: "DIGITALOCEAN_TAGS",
    max_workers: "DIGITALOCEAN_MAX_WORKERS",
    reuse_worker: "DIGITALOCEAN_REUSE_WORKER",
    poll_interval: "DIGITALOCEAN_POLL_INTERVAL",
    wait_timeout: "DIGITALOCEAN_WAIT_TIMEOUT",
  },
  hetzner: {
    token: "HETZNER_TOKEN",
    image: "HETZNER_IMAGE",
    server_type: "HETZNER_SERVER_TYPE",
    location: "HETZNER_LOCATION",
    disk_size: "HETZNER_DISK_SIZE",
    ssh_timeout: "HETZNER_SSH_TIMEOUT",
    docker_timeout: "HETZNER_DOCKER_TIMEOUT",
    labels: "HETZNER_LABELS",
    max_workers: "HETZNER_MAX_WORKERS",
    reuse_worker: "HETZNER_REUSE_WORKER",
    poll_interval: "HETZNER_POLL_INTERVAL",
    wait_timeout: "HETZNER_WAIT_TIMEOUT",
  },
  fly: { token: "FLY_API_TOKEN", app: "FLY_APP", region: "FLY_REGION", org: "FLY_ORG", size: null },
  qemu: {
    memory: "QEMU_MEMORY",
    cpus: "QEMU_CPUS",
    accel: "QEMU_ACCEL",
    qemu_binary: "QEMU_BINARY",
    cache_dir: "QEMU_CACHE_DIR",
    image: "QEMU_IMAGE",
  },
  vz: { memory: "VZ_MEMORY", cpus: "VZ_CPUS", cache_dir: "VZ_CACHE_DIR", image: "VZ_IMAGE" },
};
// Parameters PocketCI adds beyond the spec's tables (the reference code had them).
const EXTRA: Record<string, Record<string, string>> = {
  digitalocean: {
    ssh_timeout: "DIGITALOCEAN_SSH_TIMEOUT",
    docker_timeout: "DIGITALOCEAN_DOCKER_TIMEOUT",
    idle_timeout: "DIGITALOCEAN_IDLE_TIMEOUT",
  },
  hetzner: { idle_timeout: "HETZNER_IDLE_TIMEOUT" },
  qemu: {
    boot_timeout: "QEMU_BOOT_TIMEOUT",
    kernel: "QEMU_KERNEL",
    initrd: "QEMU_INITRD",
    append: "QEMU_APPEND",
    ssh_key: "QEMU_SSH_KEY",
  },
};

Deno.test("describeDrivers lists every driver in order with the spec's parameters and env vars", () => {
  const drivers = describeDrivers();
  assert.deepEqual(drivers.map((driver) => driver.name), [...DRIVER_NAMES]);
  for (const driver of drivers) {
    const actual = Object.fromEntries(driver.parameters.map((p) => [p.name, p.env]));
    assert.deepEqual(
      actual,
      { ...SPEC_PARAMETERS[driver.name], ...EXTRA[driver.name] },
      driver.name,
    );
    assert.ok(driver.summary.length > 10);
    for (const parameter of driver.parameters) {
      assert.ok(parameter.description.length > 5, `${driver.name}.${parameter.name}`);
      assert.ok(parameter.typeText.length > 0);
      if (!parameter.required) assert.notEqual(parameter.default, null, parameter.name);
    }
  }
});

Deno.test("only tokens are secret, and they are required", () => {
  for (const driver of describeDrivers()) {
    for (const parameter of driver.parameters) {
      assert.equal(
        parameter.secret,
        parameter.name === "token",
        `${driver.name}.${parameter.name}`,
      );
      assert.equal(parameter.required, parameter.name === "token");
    }
  }
});

Deno.test("typed parameters carry their constraints", () => {
  const byName = (driver: string, name: string) =>
    describeDrivers().find((d) => d.name === driver)!.parameters.find((p) => p.name === name)!;
  assert.equal(byName("hetzner", "max_workers").min, 1);
  assert.equal(byName("hetzner", "max_workers").type, "integer");
  assert.deepEqual(byName("qemu", "accel").values, ["hvf", "kvm", "tcg"]);
  assert.equal(byName("hetzner", "wait_timeout").typeText, "duration (0 = no limit)");
  assert.equal(byName("hetzner", "poll_interval").typeText, "duration > 0");
  assert.equal(byName("digitalocean", "tags").type, "list");
  assert.equal(byName("hetzner", "labels").type, "map");
  assert.equal(byName("hetzner", "server_type").typeText, "slug or auto");
});

Deno.test("the README's driver table is the one the schemas generate", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  assert.equal(
    normalizeTables(tableInReadme(readme)),
    normalizeTables(driverTableMarkdown()),
    "README.md is stale: run `deno run -A dsn/readme.ts`",
  );
});

Deno.test("the table comparison notices a changed default", () => {
  const table = driverTableMarkdown();
  const changed = table.replace("`docker-ce`", "`docker-ee`");
  assert.notEqual(changed, table);
  assert.notEqual(normalizeTables(changed), normalizeTables(table));
  const padded = table.replaceAll(" | ", "   |   ").replaceAll("| --- |", "| ------- |");
  assert.equal(normalizeTables(padded), normalizeTables(table));
});

Deno.test("withDriverTable replaces only the text between the markers", () => {
  const readme = "intro\n<!-- driver-table: generated from dsn/schemas.ts by dsn/readme.ts -->\n" +
    "old\n<!-- /driver-table -->\noutro\n";
  const updated = withDriverTable(readme, "NEW");
  assert.equal(
    updated,
    "intro\n<!-- driver-table: generated from dsn/schemas.ts by dsn/readme.ts -->\n\nNEW\n\n" +
      "<!-- /driver-table -->\noutro\n",
  );
  assert.throws(() => withDriverTable("no markers"), /no ".*" \.\.\. ".*" markers/);
});
