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
          error.message === (name === "vz" && Deno.build.os !== "darwin"
              // vz first needs macOS, whether or not it is implemented (drivers/vz/platform.ts).
              ? `the vz driver needs macOS (Apple Virtualization.framework) and this host runs ${Deno.build.os}; use --driver=qemu or --driver=docker here`
              : `the ${name} driver is not implemented yet in this version of PocketCI; use ${
                IMPLEMENTED_DRIVERS.map((driver) => `--driver=${driver}`).join(" or ")
              }`),
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
  const runValues = withImage.find((need) => need.permission === "run")?.values;
  assert.ok(Array.isArray(runValues));
  assert.deepEqual(runValues.slice(0, 2), ["/opt/qemu", "qemu-img"]);
  assert.equal(runValues.at(-1), "/bin/sh");
  const readValues = withImage.find((need) => need.permission === "read")?.values;
  assert.ok(Array.isArray(readValues) && readValues.includes("/c"));
  assert.ok(readValues.includes("/img.qcow2"));
  const net = withImage.find((need) => need.permission === "net")?.values;
  assert.ok(Array.isArray(net) && net.length > 0);
  assert.ok(net.every((value) => value.startsWith("unix:")), "with image= no download host");
  const download = qemu.permissions({ cache_dir: "/c", qemu_binary: "/opt/qemu" });
  assert.ok(
    download.some((need) =>
      need.permission === "net" && Array.isArray(need.values) &&
      need.values.includes("cloud-images.ubuntu.com:443")
    ),
  );
  const k8s = await getDriverFactory("k8s");
  assert.deepEqual(
    k8s.permissions({ kubeconfig: "/k" }).find((need) => need.permission === "read")?.values,
    ["/k"],
  );
  const fly = await getDriverFactory("fly");
  const flyNet = fly.permissions({ token: "x" }).find((need) => need.permission === "net");
  const hostOf = (url: string) => {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || (parsed.protocol === "https:" ? "443" : "80")}`;
  };
  assert.deepEqual(flyNet?.values, [
    ...new Set([
      hostOf(Deno.env.get("FLY_API_URL") || "https://api.machines.dev"),
      hostOf(Deno.env.get("FLY_LOGS_URL") || "https://api.fly.io"),
    ]),
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
