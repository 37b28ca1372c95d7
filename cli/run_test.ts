import assert from "node:assert/strict";
import { parseRunFlags, plainNativeDsn } from "./run.ts";
import { resolveDsn } from "../dsn/mod.ts";

Deno.test("the plain native DSN matches what the DSN layer resolves", async () => {
  const path = "/some/dir/pipeline.ts";
  const fast = await plainNativeDsn(path);
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
