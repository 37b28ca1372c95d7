import assert from "node:assert/strict";
import { durationFlag, stateDirFlag, walkFlags } from "./flags.ts";
import { UsageError } from "./errors.ts";
import { parseGcFlags, sizeFlag } from "./gc.ts";

Deno.test("walkFlags: inline and separate values, -- stops the walk, a missing value is a usage error", () => {
  const seen: string[] = [];
  let rest: string[] = [];
  walkFlags(["--a=1=2", "--b", "x", "plain", "-h", "--", "--c", "y"], (flag) => {
    if (flag.arg === "--") {
      rest = flag.rest();
      return "stop";
    }
    seen.push(flag.name.startsWith("--") ? `${flag.name}:${flag.value()}` : flag.name);
  });
  assert.deepEqual(seen, ["--a:1=2", "--b:x", "plain", "-h"]);
  assert.deepEqual(rest, ["--c", "y"]);
  assert.throws(
    () => walkFlags(["--b"], (flag) => void flag.value()),
    (error: unknown) => error instanceof UsageError && error.message === "--b needs a value",
  );
});

Deno.test("gc flags use the same walk; bad durations and a missing state directory are usage errors", async () => {
  assert.deepEqual(parseGcFlags(["--driver", "docker", "--cache-ttl=12h", "--dry-run"]), {
    driver: "docker",
    cacheTtl: "12h",
    logTtl: "7d",
    keepLogs: "50",
    dryRun: true,
    json: false,
    help: false,
  });
  assert.throws(() => parseGcFlags(["--cache-ttl"]), /--cache-ttl needs a value/);
  const logs = parseGcFlags(["--log-ttl", "2d", "--keep-logs=3"]);
  assert.deepEqual([logs.logTtl, logs.keepLogs], ["2d", "3"]);
  assert.throws(() => parseGcFlags(["extra"]), /unknown argument extra/);
  assert.equal(parseGcFlags(["--cache-max=10GB"]).cacheMax, "10GB");
  assert.equal(await sizeFlag("--cache-max", "10GB"), 10_000_000_000);
  assert.equal(await sizeFlag("--cache-max", "2Gi"), 2 * 1024 ** 3);
  await assert.rejects(
    () => sizeFlag("--cache-max", "lots"),
    /^UsageError: --cache-max: expected a positive size such as 10GB/,
  );
  assert.equal(await durationFlag("--timeout", "1m30s"), 90_000);
  await assert.rejects(() => durationFlag("--timeout", "soon"), /^UsageError: --timeout: /);
  assert.equal(await stateDirFlag("/given", {}), "/given");
  await assert.rejects(() => stateDirFlag(undefined, {}), /or pass --state-dir DIR$/);
});
