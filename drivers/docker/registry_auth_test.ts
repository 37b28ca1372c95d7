import assert from "node:assert/strict";
import {
  authForImage,
  credentialHelpers,
  dockerConfigPath,
  readDockerConfig,
  registryOf,
} from "./registry_auth.ts";

Deno.test("registry auth: the registry of an image reference", () => {
  assert.equal(registryOf("busybox"), "docker.io");
  assert.equal(registryOf("library/busybox:1"), "docker.io");
  assert.equal(registryOf("ghcr.io/owner/app:1"), "ghcr.io");
  assert.equal(registryOf("localhost:5000/app"), "localhost:5000");
  assert.equal(registryOf("registry.example:443/app@sha256:abc"), "registry.example:443");
});

Deno.test("registry auth: inline auths, identity tokens and Docker Hub's keys", async () => {
  const config = {
    auths: {
      "https://index.docker.io/v1/": { auth: btoa("hubuser:hubpass") },
      "ghcr.io": { identitytoken: "tok" },
    },
  };
  assert.deepEqual(await authForImage("busybox", config), {
    username: "hubuser",
    password: "hubpass",
    serveraddress: "https://index.docker.io/v1/",
  });
  assert.deepEqual(await authForImage("ghcr.io/o/a", config), {
    identitytoken: "tok",
    serveraddress: "ghcr.io",
  });
  assert.equal(await authForImage("quay.io/o/a", config), undefined);
});

Deno.test("registry auth: credential helpers (per registry and credsStore) are run with the server on stdin", async () => {
  const dir = await Deno.makeTempDir();
  // The helper is found through PATH; it is given to the helper only, never set process-wide
  // (other tests run concurrently).
  const helperEnv = { PATH: `${"DIR"}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}` };
  try {
    // A helper that answers for one server and says "not found" for the others.
    await Deno.writeTextFile(
      `${dir}/docker-credential-fake`,
      `#!/bin/sh
read server
if [ "$server" = "registry.example" ]; then
  printf '{"ServerURL":"%s","Username":"robot","Secret":"s3cret"}' "$server"
elif [ "$server" = "token.example" ]; then
  printf '{"ServerURL":"%s","Username":"<token>","Secret":"refresh"}' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi
`,
    );
    await Deno.chmod(`${dir}/docker-credential-fake`, 0o755);
    helperEnv.PATH = helperEnv.PATH.replace("DIR", dir);
    const perRegistry = { credHelpers: { "registry.example": "fake" } };
    assert.deepEqual(await authForImage("registry.example/app", perRegistry, helperEnv), {
      username: "robot",
      password: "s3cret",
      serveraddress: "registry.example",
    });
    const store = { credsStore: "fake" };
    assert.deepEqual(await authForImage("token.example/app", store, helperEnv), {
      identitytoken: "refresh",
      serveraddress: "token.example",
    });
    assert.equal(await authForImage("busybox", store, helperEnv), undefined);
    assert.deepEqual(credentialHelpers({ ...perRegistry, ...store }), ["docker-credential-fake"]);
    await assert.rejects(
      () => authForImage("x.example/app", { credsStore: "absent" }, helperEnv),
      /docker-credential-absent/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("registry auth: config path and a missing or broken file", async () => {
  assert.equal(dockerConfigPath({ DOCKER_CONFIG: "/cfg", HOME: "/home/u" }), "/cfg/config.json");
  assert.equal(dockerConfigPath({ HOME: "/home/u" }), "/home/u/.docker/config.json");
  assert.deepEqual(await readDockerConfig("/nonexistent/config.json"), {});
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, "{not json");
    await assert.rejects(() => readDockerConfig(file), /not valid JSON/);
  } finally {
    await Deno.remove(file);
  }
});
