import assert from "node:assert/strict";
import { parseRunFlags, plainNativeDsn } from "./run.ts";
import { resolveDsn } from "../dsn/mod.ts";

Deno.test("the plain native DSN matches what the DSN layer resolves", async () => {
  const path = "/some/dir/pipeline.ts";
  const fast = await plainNativeDsn(path, "/elsewhere");
  const full = resolveDsn("native", { pipelinePath: path, cwd: "/elsewhere", env: {} });
  assert.equal(fast.namespace, full.namespace);
  assert.deepEqual(fast.config, full.config);
  assert.equal(fast.namespaceFromDsn, full.namespaceFromDsn);
});

Deno.test("run flags: values inline or separate, grants, args after --", () => {
  const flags = parseRunFlags([
    "p.ts",
    "--driver=docker",
    "--timeout",
    "5m",
    "--parallelism=3",
    "--secret",
    "A",
    "--secret=B",
    "--allow-net=example.com",
    "--json",
    "--",
    "--not-a-flag",
    "x",
  ]);
  assert.equal(flags.pipeline, "p.ts");
  assert.equal(flags.driver, "docker");
  assert.equal(flags.timeout, "5m");
  assert.equal(flags.parallelism, 3);
  assert.deepEqual(flags.secrets, ["A", "B"]);
  assert.deepEqual(flags.grants.net, ["example.com"]);
  assert.equal(flags.json, true);
  assert.deepEqual(flags.args, ["--not-a-flag", "x"]);
  assert.throws(() => parseRunFlags(["p.ts", "q.ts"]), /after `--`/);
  assert.throws(() => parseRunFlags(["--timeout"]), /needs a value/);
});

Deno.test("the runner child holds the driver's permissions, the runner's own and the user's grants only", async () => {
  const { childPermissionFlags } = await import("./run.ts");
  const { nativePermissions } = await import("../drivers/native/factory.ts");
  const base = {
    pipelinePath: "/work/project/pipeline.ts",
    dsn: await plainNativeDsn("/work/project/pipeline.ts", "/work/project"),
    dsnSecrets: [],
    secrets: [],
    runId: "r",
    args: [],
    stateDir: "/state",
    json: false,
    colour: false,
    permissions: {
      read: false,
      write: false,
      net: false,
      env: false,
      run: false,
      ffi: false,
      sys: false,
    },
  } as const;
  const flags = childPermissionFlags(base, nativePermissions({ stateDir: "/state" }));
  const joined = flags.join(" ");
  assert.ok(flags.includes("--allow-run"), joined);
  assert.match(joined, /--allow-read=[^ ]*\/work\/project/);
  assert.match(joined, /--allow-write=[^ ]*\/work\/project/);
  assert.match(joined, /--allow-write=[^ ]*\/state/);
  for (const absent of ["--allow-ffi", "--allow-all"]) {
    assert.ok(!joined.includes(absent), `${absent} in ${joined}`);
  }
  // The network only as far as native services' readiness checks on 127.0.0.1.
  assert.deepEqual(flags.filter((flag) => flag.startsWith("--allow-net")), [
    "--allow-net=127.0.0.1",
  ]);
  assert.ok(!flags.includes("--allow-env"), "no unrestricted env");
  const granted = childPermissionFlags(
    { ...base, permissions: { ...base.permissions, net: ["example.com"] } },
    nativePermissions({ stateDir: "/state" }),
  );
  assert.ok(granted.includes("--allow-net=127.0.0.1,example.com"), granted.join(" "));
});

Deno.test("with --service-driver the runner child holds the union of both drivers' permissions", async () => {
  const { childPermissionFlags, driverNeeds } = await import("./run.ts");
  const { resolveDsn } = await import("../dsn/mod.ts");
  const dsn = await plainNativeDsn("/work/project/pipeline.ts", "/work/project");
  const serviceDsn = {
    ...resolveDsn("docker:host=unix:///run/svc-engine.sock", { cwd: "/work/project" }),
    namespace: dsn.namespace,
  };
  const nativeOnly = await driverNeeds({ dsn });
  const both = await driverNeeds({ dsn, serviceDsn });
  assert.ok(nativeOnly.length > 0 && both.length > nativeOnly.length);
  const bothText = both.map((need) => JSON.stringify(need));
  for (const need of nativeOnly) assert.ok(bothText.includes(JSON.stringify(need)), need.reason);
  const flags = childPermissionFlags({
    pipelinePath: "/work/project/pipeline.ts",
    dsn,
    serviceDsn,
    dsnSecrets: [],
    secrets: [],
    runId: "r",
    args: [],
    stateDir: "/state",
    json: false,
    colour: false,
    permissions: {
      read: false,
      write: false,
      net: false,
      env: false,
      run: false,
      ffi: false,
      sys: false,
    },
  }, both);
  const joined = flags.join(" ");
  assert.match(joined, /--allow-read=[^ ]*\/run\/svc-engine\.sock/, "the docker engine socket");
  assert.match(joined, /--allow-net=[^ ]*unix:\/run\/svc-engine\.sock/);
  assert.match(joined, /--allow-read=[^ ]*\/usr\/bin\/setsid/, "the native driver's own");
  assert.ok(flags.includes("--allow-run"), joined);
});
