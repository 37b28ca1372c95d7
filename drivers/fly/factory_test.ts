import assert from "node:assert/strict";
import { apiHost, flyPermissions } from "./factory.ts";
import { parseRead } from "./scripts.ts";
import { cacheVolumeName, runVolumeName, VolumeLocks } from "./volumes.ts";
import { ephemeralAppName, flyConfig } from "./create.ts";
import { DriverError } from "../contract.ts";

Deno.test("fly permissions: net to the API hosts only (FLY_API_URL's and FLY_LOGS_URL's when set)", () => {
  assert.equal(apiHost("https://api.machines.dev"), "api.machines.dev:443");
  assert.equal(apiHost("http://127.0.0.1:4567/"), "127.0.0.1:4567");
  const net = (needs: ReturnType<typeof flyPermissions>) =>
    needs.filter((n) => n.permission === "net").map((n) => n.values);
  assert.deepEqual(net(flyPermissions("https://api.machines.dev")), [[
    "api.machines.dev:443",
    "api.fly.io:443",
  ]]);
  const local = flyPermissions("http://127.0.0.1:4567", "http://127.0.0.1:4567");
  assert.deepEqual(net(local), [["127.0.0.1:4567"]]);
  assert.deepEqual(local.map((n) => n.permission).sort(), ["env", "net"]);
});

Deno.test("fly config: token required, size checked, org defaults to personal", () => {
  assert.throws(
    () => flyConfig({}),
    (e: unknown) => e instanceof DriverError && /FLY_API_TOKEN/.test(e.message),
  );
  assert.throws(() => flyConfig({ token: "t", size: "x" }), /unknown Fly size "x"/);
  assert.deepEqual(flyConfig({ token: "t" }), {
    token: "t",
    app: undefined,
    region: undefined,
    org: "personal",
    size: "shared-cpu-1x",
  });
  assert.equal(ephemeralAppName("My_Repo.git"), "ci-my-repo-git");
  assert.equal(ephemeralAppName("x".repeat(80)).length, 63);
});

Deno.test("fly volume names fit Fly's [a-z0-9_]{1,30} and differ per run, name and key", () => {
  const names = [
    runVolumeName("ns", "run1", "src"),
    runVolumeName("ns", "run2", "src"),
    runVolumeName("ns", "run1", "out"),
    cacheVolumeName("ns", "npm", undefined),
    cacheVolumeName("ns", "npm", "v1"),
    cacheVolumeName("ns", "npm", "v2"),
  ];
  for (const name of names) assert.match(name, /^[a-z0-9_]{1,30}$/);
  assert.equal(new Set(names).size, names.length);
});

Deno.test("fly reader output: header, then base64 of each stream split by a dot line", () => {
  const parsed = parseRead(`0 0 5 3\n${btoa("hello")}\n.\n${btoa("err")}\n`);
  assert.equal(parsed.status, 0);
  assert.equal(new TextDecoder().decode(parsed.out), "hello");
  assert.equal(new TextDecoder().decode(parsed.err), "err");
  const running = parseRead("- 0 0 0\n\n.\n\n");
  assert.equal(running.status, undefined);
  assert.equal(running.out.length + running.err.length, 0);
  assert.throws(() => parseRead("garbage"), /unexpected reader output/);
});

Deno.test("fly volume locks: one holder at a time, in FIFO order, no deadlock across two volumes", async () => {
  const locks = new VolumeLocks();
  const order: string[] = [];
  const first = await locks.acquire(["b", "a"]);
  const second = locks.acquire(["a", "b"]).then((release) => {
    order.push("second");
    release();
  });
  await new Promise((resolve) => setTimeout(resolve, 20));
  order.push("first");
  first();
  await second;
  assert.deepEqual(order, ["first", "second"]);
  assert.equal(locks.busy("a"), false);
});
