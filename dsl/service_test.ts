import assert from "node:assert/strict";
import { secret, service } from "./mod.ts";
import { installHost, type PipelineHost, type ServiceRequest } from "./host.ts";
import { checkServiceRequest } from "../runner/check_request.ts";

/** A host that records service requests and answers with published ports. */
function fakeHost() {
  const started: ServiceRequest[] = [];
  const stopped: string[] = [];
  const host = {
    startService: (request: ServiceRequest) => {
      started.push(request);
      const hostPorts = Object.fromEntries(request.ports.map((p) => [String(p), p + 40000]));
      return Promise.resolve({ id: `svc-${started.length}`, name: request.name, hostPorts });
    },
    stopService: (id: string) => {
      stopped.push(id);
      return Promise.resolve();
    },
    serviceLogs: (id: string) => Promise.resolve(`logs of ${id}`),
  } as unknown as PipelineHost;
  installHost(host);
  return { started, stopped };
}

Deno.test("service: an immutable builder; the request carries image, env, ports, ready and run", async () => {
  const { started } = fakeHost();
  try {
    const base = service("db").image("postgres:16").env({ PASSWORD: secret("DB_PASSWORD") });
    const ready = base.ports(5432).ready({ tcp: 5432 }, { timeout: "30s", interval: "250ms" });
    await base.start();
    await ready.run("postgres", "-c", "fsync=off").start();
    assert.equal(started[0].ports.length, 0, "the base template was not changed");
    assert.equal(started[0].ready, undefined);
    assert.equal(started[0].command, undefined, "no run(): the image's CMD");
    assert.deepEqual(started[1].ports, [5432]);
    assert.deepEqual(started[1].ready, {
      probe: { tcp: 5432 },
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    assert.deepEqual(started[1].command, ["postgres", "-c", "fsync=off"]);
    assert.deepEqual(started[1].env, { PASSWORD: { pocketciSecret: "DB_PASSWORD" } });
    assert.equal(started[1].entrypoint, undefined, "the image's ENTRYPOINT is kept");
    // What the DSL sends passes the runner's own check unchanged.
    assert.deepEqual(checkServiceRequest(started[1]), {
      ...started[1],
      workDir: undefined,
      image: "postgres:16",
      user: undefined,
      privileged: undefined,
      cpu: undefined,
      memoryBytes: undefined,
      pull: undefined,
      platform: undefined,
      entrypoint: undefined,
    });
  } finally {
    installHost(undefined);
  }
});

Deno.test("service: ready() defaults to 60s every 500ms", async () => {
  const { started } = fakeHost();
  try {
    await service("web").image("nginx").ready({ http: "http://localhost:8080/health" }).start();
    assert.deepEqual(started[0].ready, {
      probe: { http: "http://localhost:8080/health" },
      timeoutMs: 60_000,
      intervalMs: 500,
    });
  } finally {
    installHost(undefined);
  }
});

Deno.test("service: start() gives a handle with hostPort, logs, stop and asyncDispose", async () => {
  const { stopped } = fakeHost();
  try {
    {
      await using db = await service("db").image("redis").ports(6379).start();
      assert.equal(db.name, "db");
      assert.equal(db.hostPort(6379), 46379);
      assert.throws(
        () => db.hostPort(1234),
        /does not publish port 1234; add it to \.ports\(6379, 1234\)/,
      );
      assert.equal(await db.logs(), "logs of svc-1");
    }
    assert.deepEqual(stopped, ["svc-1"], "await using stopped it");
  } finally {
    installHost(undefined);
  }
});

Deno.test("service: names must be DNS labels, never another host's name", () => {
  for (const name of ["DB", "my_db", "-db", "db-", "a.b", "", "123", "localhost", "x".repeat(64)]) {
    assert.throws(() => service(name), /invalid service name .*DNS label/, name);
  }
  assert.doesNotThrow(() => service("db-2"));
  assert.doesNotThrow(() => service("x".repeat(63)));
});

Deno.test("service: bad ports, probes and durations are one-line errors", () => {
  const svc = service("db");
  assert.throws(() => svc.ports(), /ports\(\) needs at least one port/);
  assert.throws(() => svc.ports(0), /invalid port 0/);
  assert.throws(() => svc.ports(70000), /invalid port 70000/);
  assert.throws(() => svc.ports(5432, 5432), /lists a port twice/);
  assert.throws(() => svc.ready({ tcp: "5432" } as never), /invalid port "5432"/);
  assert.throws(() => svc.ready({} as never), /ready\(\) needs \{ tcp: 5432 \}/);
  assert.throws(() => svc.ready({ tcp: 1, http: "x" } as never), /ready\(\) needs/);
  assert.throws(() => svc.ready({ exec: [] }), /ready\(\{ exec \}\) needs a command/);
  assert.throws(
    () => svc.ready({ http: "http://example.com/" }),
    /an http:\/\/ URL of the service itself/,
  );
  assert.throws(() => svc.ready({ http: "https://localhost/" }), /the service itself/);
  assert.doesNotThrow(() => svc.ready({ http: "http://db:8080/ok" }));
  assert.throws(() => svc.ready({ tcp: 1 }, { timeout: "soon" }), /invalid duration "soon"/);
  assert.throws(() => svc.ready({ tcp: 1 }, { interval: 0 }), /positive/);
});

Deno.test("service: task-only methods are refused with what to do instead", () => {
  const svc = service("db");
  assert.throws(() => svc.timeout("1s"), /service\(\) has no timeout\(\): .*ready\(\) a timeout/);
  assert.throws(() => svc.stdin("x"), /service\(\) has no stdin\(\)/);
  assert.throws(() => svc.allowFailure(), /service\(\) has no allowFailure\(\)/);
  assert.throws(() => svc.background(), /service\(\) has no background\(\)/);
  assert.throws(() => svc.onOutput(() => {}), /service\(\) has no onOutput\(\): .*logs\(\)/);
  assert.throws(() => svc.name("other"), /service\(\) has no name\(\)/);
  assert.throws(() => svc.retry(2), /service\(\) has no retry\(\): .*timeout/);
});

Deno.test("service: the runner refuses requests the DSL would not send", () => {
  const valid = { name: "db", env: {}, mounts: [], ports: [] };
  assert.throws(() => checkServiceRequest({ ...valid, name: "Bad_Name" }), /invalid service name/);
  assert.throws(() => checkServiceRequest({ ...valid, ports: [0] }), /invalid port 0/);
  assert.throws(
    () =>
      checkServiceRequest({
        ...valid,
        ready: { probe: { http: "http://evil.example/" }, timeoutMs: 1, intervalMs: 1 },
      }),
    /the service itself/,
  );
  assert.throws(
    () =>
      checkServiceRequest({ ...valid, ready: { probe: { tcp: 1 }, timeoutMs: -1, intervalMs: 1 } }),
    /positive/,
  );
  assert.throws(() => checkServiceRequest({ ...valid, command: "sh" }), /run\(\) needs a command/);
  assert.throws(() => checkServiceRequest("x"), /pipeline code must use the pocketci DSL/);
});
