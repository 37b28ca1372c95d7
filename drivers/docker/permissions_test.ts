import assert from "node:assert/strict";
import type { PermissionNeed } from "../contract.ts";
import { CONTAINER_NETWORKS, dockerPermissions } from "./permissions.ts";

const byName = (needs: PermissionNeed[]) =>
  Object.fromEntries(needs.map((n) => [n.permission, n.values]));

Deno.test("permissions: local socket needs read/write/net on the socket only, plus env and the CLI config", () => {
  const needs = dockerPermissions({}, { HOME: "/home/u" });
  assert.deepEqual(byName(needs), {
    env: true,
    read: ["/var/run/docker.sock", "/home/u/.docker/config.json"],
    write: ["/var/run/docker.sock"],
    net: ["unix:/var/run/docker.sock", ...CONTAINER_NETWORKS],
  });
  for (const need of needs) assert.ok(need.reason.length > 10, `${need.permission} has a reason`);
});

Deno.test("permissions: tcp needs the host:port and, with TLS, the certificates", () => {
  assert.deepEqual(byName(dockerPermissions({ host: "tcp://10.1.2.3:2375" }, {})).net, [
    "10.1.2.3:2375",
    ...CONTAINER_NETWORKS,
  ]);
  const tls = byName(
    dockerPermissions({ host: "tcp://d.example:2376" }, { DOCKER_CERT_PATH: "/certs", HOME: "/h" }),
  );
  assert.deepEqual(tls.read, ["/certs", "/h/.docker/config.json"]);
  assert.equal(tls.write, undefined, "no write permission over TCP");
});

Deno.test("permissions: ssh needs the ssh host, ~/.ssh and the agent socket; credential helpers need run", () => {
  const needs = byName(dockerPermissions(
    { host: "ssh://root@build.example:2222" },
    { HOME: "/h", SSH_AUTH_SOCK: "/tmp/agent.1", credentialHelpers: ["docker-credential-pass"] },
  ));
  assert.deepEqual(needs.net, ["build.example:2222", "unix:/tmp/agent.1"]);
  assert.deepEqual(needs.read, ["/h/.ssh", "/tmp/agent.1", "/h/.docker/config.json"]);
  assert.deepEqual(needs.write, ["/tmp/agent.1"]);
  assert.deepEqual(needs.run, ["docker-credential-pass"]);
});

Deno.test("permissions: DOCKER_HOST is followed when the DSN has no host", () => {
  assert.deepEqual(byName(dockerPermissions({}, { DOCKER_HOST: "unix:///run/docker.sock" })).net, [
    "unix:/run/docker.sock",
    ...CONTAINER_NETWORKS,
  ]);
});
