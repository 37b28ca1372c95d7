/**
 * The k8s driver's own behaviour against the fake API server: log streams resumed after a
 * dropped connection, readiness errors, start_timeout, namespaces, token auth and the pod it
 * builds.
 */

import assert from "node:assert/strict";
import { DriverError, type TaskSpec } from "../../drivers/contract.ts";
import { k8sFactory } from "../../drivers/k8s/factory.ts";
import { DEADLINE_MARGIN_S } from "../../drivers/k8s/driver.ts";
import { startFakeKube } from "../fakes/kube/server.ts";
import { createTestContext } from "../conformance/context.ts";
import { OutputCollector } from "../conformance/driver_suite.ts";
import { assertKube, ignoreKube } from "./fixture.ts";

const IMAGE = "busybox:latest";
let counter = 0;

function task(command: string[], extra: Partial<TaskSpec> = {}): TaskSpec {
  const id = `k${++counter}-${crypto.randomUUID().slice(0, 6)}`;
  return { id, name: extra.name ?? id, image: IMAGE, command, env: {}, mounts: [], ...extra };
}

Deno.test({
  name: "k8s driver against the fake API server",
  ignore: ignoreKube,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    assertKube();
    const kube = await startFakeKube();
    const base = { kubeconfig: kube.kubeconfig, namespace: "default", start_timeout: "1m" };
    const withDriver = async (
      config: Record<string, unknown>,
      body: (driver: Awaited<ReturnType<typeof k8sFactory.create>>) => Promise<void>,
    ) => {
      const ctx = await createTestContext();
      const driver = await k8sFactory.create(config, ctx);
      try {
        await body(driver);
      } finally {
        const report = await driver.close();
        assert.deepEqual(report.failed, []);
        await ctx.dispose();
      }
    };
    try {
      await t.step(
        "a log stream cut mid-task resumes: 2,000 late lines arrive exactly once",
        async () => {
          await withDriver(base, async (driver) => {
            const output = new OutputCollector();
            const script = "echo start; sleep 1; i=0; while [ $i -lt 2000 ]; do echo line-$i; " +
              "i=$((i+1)); [ $((i % 250)) = 0 ] && sleep 0.1; done; echo end";
            const handle = await driver.startTask(task(["sh", "-c", script]), output.sink);
            await output.waitFor("stdout", "start");
            let drops = 0;
            const dropper = setInterval(() => drops += kube.dropLogStreams(), 120);
            const status = await handle.wait().finally(() => clearInterval(dropper));
            assert.equal(status.code, 0);
            const lines = output.stdout.trimEnd().split("\n");
            const expected = [
              "start",
              ...Array.from({ length: 2000 }, (_, i) => `line-${i}`),
              "end",
            ];
            assert.ok(drops >= 3, `only ${drops} log streams were cut`);
            assert.equal(lines.length, expected.length, "lines lost or repeated");
            assert.deepEqual(lines, expected);
            const resumed = kube.requests.filter((r) => /\/log\?.*sinceTime=/.test(r));
            assert.ok(resumed.length >= 3, "the follow was not resumed with sinceTime");
          });
        },
      );

      await t.step(
        "a missing image is image_not_found with the kubelet's pull message",
        async () => {
          await withDriver(base, async (driver) => {
            await assert.rejects(
              () =>
                driver.startTask(
                  task(["true"], { image: "pocketci-test/no-such-image:1" }),
                  () => {},
                ),
              (error: unknown) =>
                error instanceof DriverError && error.code === "image_not_found" &&
                /no-such-image:1 could not be pulled \(ErrImagePull\): Failed to pull image/.test(
                  error.message,
                ) &&
                !error.message.includes("\n"),
            );
            assert.deepEqual(
              kube.store.list("pods", "default").filter((p) =>
                p.metadata.labels?.["io.pocketci.managed"]
              ),
              [],
            );
          });
        },
      );

      await t.step("an unschedulable pod fails at once with the scheduler's message", async () => {
        await withDriver(base, async (driver) => {
          const started = Date.now();
          await assert.rejects(
            () => driver.startTask(task(["true"], { limits: { cpu: 512 } }), () => {}),
            (error: unknown) =>
              error instanceof DriverError && error.code === "failed" &&
              /Unschedulable: 0\/1 nodes are available: 1 Insufficient cpu/.test(error.message),
          );
          assert.ok(Date.now() - started < 10_000);
        });
      });

      await t.step("a pod still Pending after start_timeout fails with one line", async () => {
        await withDriver({ ...base, start_timeout: "2s" }, async (driver) => {
          kube.pauseScheduler(true);
          const started = Date.now();
          try {
            await assert.rejects(
              () => driver.startTask(task(["true"]), () => {}),
              (error: unknown) =>
                error instanceof DriverError &&
                /did not start within 2s \(start_timeout\)/.test(error.message),
            );
          } finally {
            kube.pauseScheduler(false);
          }
          const elapsed = Date.now() - started;
          assert.ok(elapsed >= 1900 && elapsed < 8000, `${elapsed} ms`);
        });
      });

      await t.step(
        "the pod: labels, requests = limits, numeric user, pull policy, argv as given",
        async () => {
          await withDriver(base, async (driver) => {
            const output = new OutputCollector();
            const tricky = `a 'b' "c" $HOME \\ ; echo injected`;
            const spec = task(["sh", "-c", 'printf "%s|" "$@"; id -u; id -g', "sh", tricky, ""], {
              user: "1000:2000",
              limits: { cpu: 0.5, memoryBytes: 64 * 1024 * 1024 },
              pull: "never",
            });
            const handle = await driver.startTask(spec, output.sink);
            const pod = kube.store.list("pods", "default").find((p) =>
              p.metadata.labels?.["io.pocketci.task"] === spec.id
            )!;
            assert.equal((await handle.wait()).code, 0);
            assert.equal(output.stdout, `${tricky}||1000\n2000\n`);
            assert.match(pod.metadata.name, /^pci-t-k\d+-[0-9a-f]{6}-[0-9a-f]{10}$/);
            assert.equal(pod.metadata.labels["io.pocketci.run"].length > 0, true);
            const c = pod.spec.containers[0];
            assert.deepEqual(c.command, spec.command);
            assert.deepEqual(c.args, []);
            assert.equal(c.imagePullPolicy, "Never");
            assert.deepEqual(c.resources.requests, {
              cpu: "500m",
              memory: String(64 * 1024 * 1024),
            });
            assert.deepEqual(c.resources.limits, c.resources.requests);
            assert.deepEqual(c.securityContext, { runAsUser: 1000, runAsGroup: 2000 });
            assert.equal(pod.spec.restartPolicy, "Never");
            assert.equal(c.workingDir, "/workspace");
            assert.equal(pod.spec.activeDeadlineSeconds, undefined, "no timeout, no deadline");
            await handle.remove();
          });
        },
      );

      await t.step(
        "a task's timeout is its pod's activeDeadlineSeconds plus a margin; a sandbox gets none",
        async () => {
          await withDriver(base, async (driver) => {
            const output = new OutputCollector();
            const spec = { ...task(["sleep", "30"]), timeoutMs: 2_500 };
            const handle = await driver.startTask(spec, output.sink);
            const pod = kube.store.list("pods", "default").find((p) =>
              p.metadata.labels?.["io.pocketci.task"] === spec.id
            )!;
            assert.equal(pod.spec.activeDeadlineSeconds, 3 + DEADLINE_MARGIN_S);
            await handle.remove();
            // A sandbox's timeout bounds each call, never the pod: it gets no deadline.
            const box = await driver.startSandbox({ ...task([]), timeoutMs: 1_000 });
            const boxPod = kube.store.list("pods", "default").find((p) =>
              p.metadata.name.startsWith("pci-s-")
            )!;
            assert.equal(boxPod.spec.activeDeadlineSeconds, undefined);
            await box.close();
          });
        },
      );

      await t.step("a missing namespace is named; create_namespace=true creates it", async () => {
        const ctx = await createTestContext();
        try {
          await assert.rejects(
            () => k8sFactory.create({ ...base, namespace: "ci-missing" }, ctx),
            (error: unknown) =>
              error instanceof DriverError &&
              /namespace "ci-missing" does not exist/.test(error.message) &&
              /create_namespace=true/.test(error.message),
          );
        } finally {
          await ctx.dispose();
        }
        await withDriver(
          { ...base, namespace: "ci-made", create_namespace: true },
          async (driver) => {
            assert.ok(kube.store.get("namespaces", undefined, "ci-made"));
            const output = new OutputCollector();
            const handle = await driver.startTask(task(["echo", "in-ci-made"]), output.sink);
            assert.equal((await handle.wait()).code, 0);
            assert.equal(output.stdout, "in-ci-made\n");
          },
        );
      });

      await t.step("a bearer-token context works; a wrong token is a one-line error", async () => {
        const dir = await Deno.makeTempDir();
        try {
          const config = JSON.parse(await Deno.readTextFile(kube.kubeconfig));
          config["current-context"] = "fake-token";
          await Deno.writeTextFile(`${dir}/token`, JSON.stringify(config));
          await withDriver({ ...base, kubeconfig: `${dir}/token` }, async (driver) => {
            const output = new OutputCollector();
            const handle = await driver.startTask(task(["echo", "token-ok"]), output.sink);
            assert.equal((await handle.wait()).code, 0);
            assert.equal(output.stdout, "token-ok\n");
          });
          config.users[1].user.token = "wrong";
          await Deno.writeTextFile(`${dir}/bad`, JSON.stringify(config));
          const ctx = await createTestContext();
          try {
            await assert.rejects(
              () => k8sFactory.create({ ...base, kubeconfig: `${dir}/bad` }, ctx),
              (error: unknown) =>
                error instanceof DriverError && /Unauthorized/.test(error.message) &&
                !error.message.includes("wrong"),
            );
          } finally {
            await ctx.dispose();
          }
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });
    } finally {
      await kube.close();
    }
    const left = await new Deno.Command("docker", {
      args: ["ps", "-aq", "--filter", `network=${kube.network}`],
    }).output();
    assert.equal(new TextDecoder().decode(left.stdout).trim(), "");
  },
});
