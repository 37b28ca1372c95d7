/**
 * Kubeconfig resolution (the KUBECONFIG list merged as kubectl merges, missing files, no
 * cluster) and the permissions the k8s driver asks for.
 */

import assert from "node:assert/strict";
import { DriverError } from "../../drivers/contract.ts";
import { loadKubeTarget } from "../../drivers/k8s/config.ts";
import { k8sPermissions, kubeconfigRefs } from "../../drivers/k8s/permissions.ts";
import { labelValue, objectName } from "../../drivers/k8s/names.ts";

function config(
  cluster: string,
  server: string,
  current: string | undefined,
  extra: Record<string, unknown> = {},
) {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: cluster, cluster: { server } }],
    users: [{ name: `${cluster}-user`, user: { token: "t" } }],
    contexts: [{ name: cluster, context: { cluster, user: `${cluster}-user` } }],
    ...(current ? { "current-context": current } : {}),
    ...extra,
  });
}

Deno.test("kubeconfig: a KUBECONFIG list is merged as kubectl does (first definition wins)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/a`, config("one", "https://one.example:6443", undefined));
    await Deno.writeTextFile(`${dir}/b`, config("one", "https://shadowed.example", "one"));
    await Deno.writeTextFile(`${dir}/c`, config("two", "https://two.example", "two"));
    const target = loadKubeTarget(`${dir}/missing:${dir}/a:${dir}/b:${dir}/c`, () => undefined);
    // current-context from the first file that sets it (b), cluster "one" from the first (a).
    assert.equal(target.kc.getCurrentContext(), "one");
    assert.equal(target.server, "https://one.example:6443");
    assert.equal(target.source, `${dir}/a:${dir}/b:${dir}/c`);
    assert.deepEqual(target.kc.getContexts().map((c) => c.name).sort(), ["one", "two"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kubeconfig: none found outside a cluster is one line naming what was looked for", () => {
  assert.throws(
    () => loadKubeTarget("/nonexistent/kube/config", () => undefined),
    (error: unknown) =>
      error instanceof DriverError && error.code === "unavailable" &&
      /looked for \/nonexistent\/kube\/config/.test(error.message) &&
      /KUBECONFIG/.test(error.message) && !error.message.includes("\n"),
  );
});

Deno.test("kubeconfig: a current context that is not defined is a clear error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/a`, config("one", "https://one.example", "ghost"));
    assert.throws(
      () => loadKubeTarget(`${dir}/a`, () => undefined),
      /names "ghost", which is not defined/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("permissions: net to the servers named, read of the files named, run of the exec plugin only", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const yaml = [
      "apiVersion: v1",
      "clusters:",
      "- cluster:",
      "    certificate-authority: ca.crt",
      "    server: https://k8s.example.com",
      "  name: prod",
      "- cluster: {server: 'http://10.0.0.5:8080'}",
      "  name: dev",
      "users:",
      "- name: gke",
      "  user:",
      "    exec:",
      "      apiVersion: client.authentication.k8s.io/v1beta1",
      "      command: gke-gcloud-auth-plugin",
      "- name: cert",
      "  user:",
      "    client-certificate: /etc/kube/client.crt",
      '    client-key: "/etc/kube/client.key"',
    ].join("\n");
    await Deno.writeTextFile(`${dir}/config`, yaml);
    const refs = kubeconfigRefs(yaml, dir);
    assert.deepEqual(refs.servers, ["k8s.example.com:443", "10.0.0.5:8080"]);
    assert.deepEqual(refs.commands, ["gke-gcloud-auth-plugin"]);
    assert.deepEqual(refs.files, [`${dir}/ca.crt`, "/etc/kube/client.crt", "/etc/kube/client.key"]);
    const needs = k8sPermissions({ kubeconfig: `${dir}/config` }, () => undefined);
    const by = Object.fromEntries(needs.map((n) => [n.permission, n.values]));
    assert.deepEqual(by.net, ["k8s.example.com:443", "10.0.0.5:8080"]);
    assert.deepEqual(by.run, ["gke-gcloud-auth-plugin"]);
    assert.deepEqual(by.read, [
      `${dir}/config`,
      `${dir}/ca.crt`,
      "/etc/kube/client.crt",
      "/etc/kube/client.key",
    ]);
    assert.equal(by.write, undefined);
    const plain = k8sPermissions(
      { kubeconfig: `${dir}/none` },
      (n) => n === "KUBERNETES_SERVICE_HOST" ? "10.96.0.1" : undefined,
    );
    const inCluster = Object.fromEntries(plain.map((n) => [n.permission, n.values]));
    assert.deepEqual(inCluster.net, ["10.96.0.1:443"]);
    assert.equal(inCluster.run, undefined, "no exec plugin: no run permission");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("names: DNS-1123 labels with a hash; label values that are not valid become hashes", () => {
  const name = objectName("pci-t", "Build & Test: ÜBER_long name ".repeat(5), "run\0id");
  assert.match(name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  assert.ok(name.length <= 63, name);
  assert.notEqual(objectName("pci-t", "x", "a"), objectName("pci-t", "x", "b"));
  assert.equal(labelValue("my-namespace"), "my-namespace");
  assert.match(labelValue("github.com/owner/repo"), /^h-[0-9a-f]{10}$/);
});
