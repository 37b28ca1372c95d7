/**
 * The example pipelines on the k8s driver, through the CLI, against the fake API server (the
 * kubeconfig through KUBECONFIG, as a user sets it).
 */

import assert from "node:assert/strict";
import { runCli } from "../helpers/cli.ts";
import { checkGroupsText, checkRetryText, NO_FOLDING } from "../helpers/example_checks.ts";
import { startFakeKube } from "../fakes/kube/server.ts";
import { assertKube, ignoreKube } from "./fixture.ts";

const EXAMPLES = new URL("../../examples/", import.meta.url).pathname;

Deno.test({
  name:
    "k8s examples: hello-world, sandbox, host-directory, parallel, allow-failure, timeout, secrets, retry, groups, cache, services",
  ignore: ignoreKube,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    assertKube();
    const kube = await startFakeKube();
    const dir = await Deno.makeTempDir({ prefix: "pocketci-k8s-examples-" });
    try {
      const copied = await new Deno.Command("cp", { args: ["-r", `${EXAMPLES}.`, dir] }).output();
      assert.ok(copied.success, "copying the examples failed");
      const example = (name: string, args: string[] = [], env: Record<string, string> = {}) =>
        runCli(["run", `${dir}/${name}`, "--driver=k8s:namespace=default", ...args], {
          env: { POCKETCI_STATE_DIR: `${dir}/.state`, KUBECONFIG: kube.kubeconfig, ...env },
        });
      for (
        const [name, expected] of [
          ["hello-world.ts", /greet \| hello from k8s/],
          ["sandbox.ts", /notes: kept between calls/],
          ["host-directory.ts", /index\.html has \d+ characters/],
        ] as const
      ) {
        const result = await example(name);
        assert.equal(result.code, 0, `${name}: ${result.stderr}`);
        assert.match(result.stdout, expected);
      }
      const parallel = await example("parallel.ts");
      assert.equal(parallel.code, 0, parallel.stderr);
      assert.equal((parallel.stdout.match(/passed/g) ?? []).length, 8);
      const allowFailure = await example("allow-failure.ts");
      assert.equal(allowFailure.code, 0, allowFailure.stderr);
      assert.match(allowFailure.stdout, /optional-check: status=failure code=3/);
      const timeout = await example("timeout.ts");
      assert.equal(timeout.code, 0, timeout.stderr);
      assert.match(timeout.stdout, /tolerated: timeout/);
      const secrets = await example("secrets.ts", ["--secret", "API_TOKEN"], {
        API_TOKEN: "t0ps3cret-token",
      });
      assert.equal(secrets.code, 0, secrets.stderr);
      assert.match(secrets.stdout, /deploy \| deploying with token \*\*\*/);
      assert.doesNotMatch(secrets.stdout + secrets.stderr, /t0ps3cret-token/);
      checkRetryText(await example("retry.ts", [], { ...NO_FOLDING }));
      checkGroupsText(
        await example("groups.ts", ["--timestamps"], { ...NO_FOLDING, GITHUB_ACTIONS: "true" }),
      );
      const first = await example("cache.ts");
      assert.equal(first.code, 0, first.stderr);
      const second = await example("cache.ts");
      assert.equal(second.code, 0, second.stderr);
      assert.match(first.stdout, /cache miss: stored a new artifact/);
      assert.match(second.stdout, /cache hit: built at /);
      const services = await example("services.ts");
      assert.equal(services.code, 0, services.stderr + services.stdout);
      assert.match(
        services.stdout,
        /the test task got \{"status":"ok"\} from http:\/\/web:8080\/health/,
      );
      const pods = kube.store.list("pods", "default");
      assert.deepEqual(pods.map((p) => p.metadata.name), [], "pods left behind");
    } finally {
      await kube.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
