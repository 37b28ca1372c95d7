/**
 * The fake API server proven with the real kubectl: what kubectl prints and exits with against
 * the fake is what it does against a cluster.
 */

import assert from "node:assert/strict";
import { startFakeKube } from "../fakes/kube/server.ts";
import { assertKubectl, ignoreKubectl, kubectl } from "./fixture.ts";

Deno.test({
  name: "fake kube: kubectl apply, wait, get -o json, logs -f, exec -i, delete, events",
  ignore: ignoreKubectl,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    assertKubectl();
    const kube = await startFakeKube();
    const home = await Deno.makeTempDir({ prefix: "kubectl-home-" });
    const k = (args: string[], stdin?: string) => kubectl(kube.kubeconfig, home, args, stdin);
    try {
      await t.step(
        "apply -f of a pod manifest creates the pod with the applied annotation",
        async () => {
          const manifest = `${home}/pod.yaml`;
          await Deno.writeTextFile(
            manifest,
            [
              "apiVersion: v1",
              "kind: Pod",
              "metadata: {name: web, labels: {app: demo}}",
              "spec:",
              "  restartPolicy: Never",
              "  containers:",
              "  - name: main",
              "    image: busybox:latest",
              "    command: [sh, -c, 'echo started; exec sleep 300']",
            ].join("\n"),
          );
          const r = await k(["apply", "-f", manifest]);
          assert.deepStrictEqual(r.code, 0, r.stderr);
          assert.deepStrictEqual(r.stdout.trim(), "pod/web created");
          const stored = kube.store.get("pods", "default", "web");
          assert.ok(
            stored?.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"],
          );
        },
      );
      await t.step("wait --for=condition=Ready returns once the container runs", async () => {
        const r = await k(["wait", "--for=condition=Ready", "pod/web", "--timeout=30s"]);
        assert.deepStrictEqual(r.code, 0, r.stderr);
        assert.deepStrictEqual(r.stdout.trim(), "pod/web condition met");
      });
      await t.step("get pods -o json shows the real object shape", async () => {
        const r = await k(["get", "pods", "-l", "app=demo", "-o", "json"]);
        assert.deepStrictEqual(r.code, 0, r.stderr);
        const list = JSON.parse(r.stdout);
        assert.deepStrictEqual(list.items.length, 1);
        const pod = list.items[0];
        assert.deepStrictEqual(pod.kind, "Pod");
        assert.deepStrictEqual(pod.status.phase, "Running");
        assert.deepStrictEqual(pod.spec.containers[0].imagePullPolicy, "Always");
        assert.ok(pod.status.containerStatuses[0].state.running.startedAt);
        assert.match(pod.metadata.resourceVersion, /^\d+$/);
        const none = await k(["get", "pods", "-l", "app=other", "-o", "json"]);
        assert.deepStrictEqual(JSON.parse(none.stdout).items.length, 0);
      });
      await t.step("exec -i passes stdin and the exit code, stderr apart", async () => {
        const r = await k(
          ["exec", "-i", "web", "--", "sh", "-c", "cat; echo to-stderr >&2; exit 3"],
          "line one\nline two\n",
        );
        assert.deepStrictEqual(r.stdout, "line one\nline two\n");
        assert.match(r.stderr, /to-stderr/);
        assert.deepStrictEqual(r.code, 3);
      });
      await t.step("logs -f follows until the container exits", async () => {
        const created = await k([
          "run",
          "counter",
          "--image=busybox:latest",
          "--restart=Never",
          "--",
          "sh",
          "-c",
          "for i in 1 2 3; do echo n$i; sleep 0.3; done",
        ]);
        assert.deepStrictEqual(created.code, 0, created.stderr);
        await k(["wait", "--for=condition=Ready", "pod/counter", "--timeout=30s"]);
        const r = await k(["logs", "-f", "counter"]);
        assert.deepStrictEqual(r.code, 0, r.stderr);
        assert.deepStrictEqual(r.stdout, "n1\nn2\nn3\n");
        const done = await k([
          "wait",
          "--for=jsonpath={.status.phase}=Succeeded",
          "pod/counter",
          "--timeout=10s",
        ]);
        assert.deepStrictEqual(done.code, 0, done.stderr);
        const pod = kube.store.get("pods", "default", "counter");
        assert.deepStrictEqual(pod?.status.phase, "Succeeded");
        assert.deepStrictEqual(
          pod?.status.containerStatuses[0].state.terminated.reason,
          "Completed",
        );
      });
      await t.step("delete removes the pod and its container", async () => {
        const r = await k(["delete", "pod", "web", "--grace-period=1"]);
        assert.deepStrictEqual(r.code, 0, r.stderr);
        assert.deepStrictEqual(r.stdout.trim(), 'pod "web" deleted');
        assert.deepStrictEqual(kube.store.get("pods", "default", "web"), undefined);
        const ps = await new Deno.Command("docker", {
          args: ["ps", "-aq", "--filter", "label=fake-kube.pod=default/web"],
        }).output();
        assert.deepStrictEqual(new TextDecoder().decode(ps.stdout).trim(), "");
        const again = await k(["get", "pod", "web"]);
        assert.deepStrictEqual(again.code, 1);
        assert.match(again.stderr, /pods "web" not found/);
      });
      await t.step("a missing image: ErrImagePull then ImagePullBackOff with events", async () => {
        const r = await k(["run", "ghost", "--image=no-such-image:1", "--restart=Never"]);
        assert.deepStrictEqual(r.code, 0, r.stderr);
        const w = await k([
          "wait",
          "--for=jsonpath={.status.containerStatuses[0].state.waiting.reason}=ImagePullBackOff",
          "pod/ghost",
          "--timeout=20s",
        ]);
        assert.deepStrictEqual(w.code, 0, w.stderr);
        const ev = await k([
          "get",
          "events",
          "--field-selector",
          "involvedObject.name=ghost",
          "-o",
          "json",
        ]);
        const reasons = JSON.parse(ev.stdout).items.map((e: { message: string }) => e.message);
        assert.ok(reasons.includes("Error: ErrImagePull"), reasons.join("|"));
        assert.ok(reasons.includes("Error: ImagePullBackOff"), reasons.join("|"));
        assert.ok(reasons.some((m: string) => /Failed to pull image "no-such-image:1"/.test(m)));
      });
      await t.step("token auth works, no credentials get 401 with a Status body", async () => {
        const r = await k(["--context", "fake-token", "get", "namespaces", "-o", "name"]);
        assert.deepStrictEqual(r.code, 0, r.stderr);
        assert.match(r.stdout, /namespace\/default/);
        const res = await fetch(`${kube.url}/api/v1/pods`, {
          client: Deno.createHttpClient({ caCerts: [kube.ca] }),
        });
        assert.deepStrictEqual(res.status, 401);
        const body = await res.json();
        assert.deepStrictEqual([body.kind, body.reason, body.code], [
          "Status",
          "Unauthorized",
          401,
        ]);
      });
    } finally {
      await kube.close();
      await Deno.remove(home, { recursive: true });
    }
    const left = await new Deno.Command("docker", {
      args: ["ps", "-aq", "--filter", "network=" + kube.network],
    }).output();
    assert.deepStrictEqual(new TextDecoder().decode(left.stdout).trim(), "");
  },
});
