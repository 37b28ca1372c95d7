import assert from "node:assert/strict";
import { DriverError } from "../contract.ts";
import { describeAddress, parseEngineHost, resolveEngineAddress } from "./engine_address.ts";

Deno.test("engine address: DSN host wins over DOCKER_HOST, which wins over the default socket", () => {
  const env = { DOCKER_HOST: "tcp://10.0.0.5:2375" };
  assert.equal(
    describeAddress(resolveEngineAddress("unix:///run/user/1000/docker.sock", env)),
    "unix:///run/user/1000/docker.sock",
  );
  assert.equal(describeAddress(resolveEngineAddress(undefined, env)), "tcp://10.0.0.5:2375");
  assert.equal(resolveEngineAddress(undefined, env).source, "DOCKER_HOST");
  assert.deepEqual(resolveEngineAddress(undefined, {}), {
    kind: "unix",
    path: "/var/run/docker.sock",
    source: "the default socket",
  });
  assert.equal(
    resolveEngineAddress("", env).source,
    "DOCKER_HOST",
    "an empty host counts as not given",
  );
});

Deno.test("engine address: unix, tcp (TLS by port or DOCKER_TLS_VERIFY) and ssh forms", () => {
  assert.deepEqual(parseEngineHost("/var/run/docker.sock", "x"), {
    kind: "unix",
    path: "/var/run/docker.sock",
    source: "x",
  });
  const tls = parseEngineHost("tcp://docker.example:2376", "x", { DOCKER_CERT_PATH: "/certs" });
  assert.deepEqual(tls, {
    kind: "tcp",
    host: "docker.example",
    port: 2376,
    tls: true,
    certPath: "/certs",
    source: "x",
  });
  const verify = parseEngineHost("tcp://docker.example:2375", "x", { DOCKER_TLS_VERIFY: "1" });
  assert.equal(verify.kind === "tcp" && verify.tls, true);
  const plain = parseEngineHost("tcp://127.0.0.1", "x");
  assert.equal(describeAddress(plain), "tcp://127.0.0.1:2375");
  const ssh = parseEngineHost("ssh://deploy@build.example:2200", "x");
  assert.deepEqual(ssh.kind === "ssh" && ssh.target, {
    user: "deploy",
    host: "build.example",
    port: 2200,
  });
  assert.equal(ssh.kind === "ssh" && ssh.socketPath, "/var/run/docker.sock");
  const defaultUser = parseEngineHost("ssh://build.example", "x", { USER: "ci" });
  assert.equal(defaultUser.kind === "ssh" && defaultUser.target.user, "ci");
});

Deno.test("engine address: unsupported schemes and relative socket paths are one-line errors", () => {
  for (
    const bad of ["npipe:////./pipe/docker_engine", "unix://relative.sock", "docker.example:2375"]
  ) {
    assert.throws(() => parseEngineHost(bad, "DOCKER_HOST"), (error: unknown) => {
      assert.ok(error instanceof DriverError && error.code === "invalid");
      assert.match(error.message, /^DOCKER_HOST: /);
      assert.ok(!error.message.includes("\n"));
      return true;
    });
  }
});
