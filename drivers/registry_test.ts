import assert from "node:assert/strict";
import { DRIVER_NAMES } from "../dsn/types.ts";
import { DriverError } from "./contract.ts";
import { getDriverFactory, IMPLEMENTED_DRIVERS } from "./registry.ts";
import { createTestContext } from "../tests/conformance/context.ts";

Deno.test("every driver name has a factory with capabilities and reasoned permissions", async () => {
  for (const name of DRIVER_NAMES) {
    const factory = await getDriverFactory(name);
    assert.equal(factory.name, name);
    const capabilities = factory.capabilities({});
    assert.equal(typeof capabilities.sandboxes, "boolean");
    const config = name === "k8s" ? { kubeconfig: "/etc/k8s/config" } : {};
    const needs = factory.permissions(config);
    assert.ok(needs.length > 0, `${name} declares no permissions`);
    for (const need of needs) {
      assert.ok(need.reason.length > 10, `${name}: ${need.permission} has no reason`);
    }
  }
});

Deno.test("drivers not implemented yet fail to create with a clear unavailable error", async () => {
  const ctx = await createTestContext();
  try {
    for (const name of DRIVER_NAMES.filter((name) => !IMPLEMENTED_DRIVERS.includes(name))) {
      const factory = await getDriverFactory(name);
      await assert.rejects(
        () => factory.create({}, ctx),
        (error: unknown) =>
          error instanceof DriverError && error.code === "unavailable" &&
          error.message ===
            `the ${name} driver is not implemented yet in this version of PocketCI; use --driver=native or --driver=docker`,
      );
    }
  } finally {
    await ctx.dispose();
  }
});

Deno.test("planned permissions follow the configuration", async () => {
  const qemu = await getDriverFactory("qemu");
  const withImage = qemu.permissions({
    cache_dir: "/c",
    image: "/img.qcow2",
    qemu_binary: "/opt/qemu",
  });
  assert.deepEqual(withImage.find((need) => need.permission === "run")?.values, [
    "/opt/qemu",
    "qemu-img",
    "genisoimage",
  ]);
  assert.deepEqual(withImage.find((need) => need.permission === "read")?.values, [
    "/c",
    "/img.qcow2",
  ]);
  assert.deepEqual(withImage.find((need) => need.permission === "net")?.values, ["127.0.0.1"]);
  const k8s = await getDriverFactory("k8s");
  assert.deepEqual(
    k8s.permissions({ kubeconfig: "/k" }).find((need) => need.permission === "read")?.values,
    ["/k"],
  );
  const fly = await getDriverFactory("fly");
  assert.deepEqual(fly.permissions({ token: "x" }).map((need) => [need.permission, need.values]), [
    ["net", ["api.machines.dev", "api.fly.io"]],
  ]);
});

Deno.test("native permissions use the given state directory", async () => {
  const native = await getDriverFactory("native");
  const needs = native.permissions({ stateDir: "/state" });
  const pathDirs = [
    ...new Set((Deno.env.get("PATH") ?? "").split(":").filter((dir) => dir.startsWith("/"))),
  ];
  assert.deepEqual(needs.map((need) => [need.permission, need.values]), [
    ["run", true],
    ["read", ["/state"]],
    ["write", ["/state"]],
    ["read", [...pathDirs, "/usr/bin/setsid", "/bin/setsid"]],
    ["env", ["PATH", "HOME"]],
    ["net", ["127.0.0.1"]],
  ]);
});
