import assert from "node:assert/strict";
import { runCli } from "./helpers/cli.ts";
import {
  checkGroupsJson,
  checkGroupsText,
  checkRetryJson,
  checkRetryText,
  NO_FOLDING,
} from "./helpers/example_checks.ts";
import { assertEngine, ignoreDocker } from "./docker/engine_fixture.ts";

const EXAMPLES = new URL("../examples/", import.meta.url).pathname;

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await copyDir(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/** Runs an example from a fresh copy of examples/ (so exports never touch the repo). */
async function example(name: string, args: string[] = [], env: Record<string, string> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-examples-" });
  await copyDir(EXAMPLES, dir);
  const result = await runCli(["run", `${dir}/${name}`, ...args], {
    env: { POCKETCI_STATE_DIR: `${dir}/.state`, ...env },
  });
  return { ...result, dir };
}

Deno.test("example hello-world", async () => {
  const result = await example("hello-world.ts");
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /greet \| hello from native/);
  assert.match(result.stdout, /the task said: hi, CI=true/);
  await Deno.remove(result.dir, { recursive: true });
});

Deno.test("example host-directory: input from the host, export back", async () => {
  const result = await example("host-directory.ts");
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /index\.html has \d+ characters/);
  const exported = (await Array.fromAsync(Deno.readDir(`${result.dir}/site-out`))).map((e) =>
    e.name
  )
    .sort();
  assert.deepEqual(exported, ["about.html", "index.html"], "drafts/ was excluded");
  assert.match(
    await Deno.readTextFile(`${result.dir}/site-out/about.html`),
    /PocketCI runs pipelines/,
  );
  await Deno.remove(result.dir, { recursive: true });
});

Deno.test("example cache: the second run hits the cache", async () => {
  const first = await example("cache.ts");
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /cache miss/);
  const second = await runCli(["run", `${first.dir}/cache.ts`], {
    env: { POCKETCI_STATE_DIR: `${first.dir}/.state` },
  });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /cache hit: built at/);
  await Deno.remove(first.dir, { recursive: true });
});

Deno.test("example keyed-cache: a miss, then the exact key, then a restore once the lockfile changes", async () => {
  const first = await example("keyed-cache.ts");
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /cache deps: miss\n/);
  assert.match(first.stdout, /installing from scratch/);
  const again = () =>
    runCli(["run", `${first.dir}/keyed-cache.ts`], {
      env: { POCKETCI_STATE_DIR: `${first.dir}/.state` },
    });
  const second = await again();
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /cache deps: exact\n/);
  const oldKey = /reusing what was installed for (deps-[0-9a-f]{64})/.exec(second.stdout)?.[1];
  assert.ok(oldKey, second.stdout);
  assert.match(second.stdout, /cache deps: hit on key deps-/, "the runner logs the hit");
  await Deno.writeTextFile(`${first.dir}/keyed-cache.lock`, "left-pad 1.3.1\n");
  const third = await again();
  assert.equal(third.code, 0, third.stderr);
  assert.match(third.stdout, new RegExp(`cache deps: restored \\(from ${oldKey}\\)`));
  assert.match(third.stdout, new RegExp(`reusing what was installed for ${oldKey}`));
  await Deno.remove(first.dir, { recursive: true });
});

Deno.test("example parallel: capped by --parallelism", async () => {
  const free = await example("parallel.ts");
  assert.equal(free.code, 0, free.stderr);
  const freeSeconds = Number(/took ([\d.]+) s/.exec(free.stdout)?.[1]);
  assert.ok(freeSeconds < 2.5, `unlimited: ${freeSeconds} s`);
  assert.equal((free.stdout.match(/passed/g) ?? []).length, 8, "four live lines and four results");
  for (const name of ["lint", "unit", "types", "docs"]) {
    assert.match(free.stdout, new RegExp(`^${name} \\| ${name} passed$`, "m"), "live line");
    assert.match(free.stdout, new RegExp(`^${name}: ${name} passed$`, "m"), "result line");
  }
  assert.doesNotMatch(free.stdout + free.stderr, /check#|^check /m, "each copy has its own name");
  const capped = await runCli(["run", `${free.dir}/parallel.ts`, "--parallelism", "2"], {
    env: { POCKETCI_STATE_DIR: `${free.dir}/.state` },
  });
  assert.equal(capped.code, 0, capped.stderr);
  const cappedSeconds = Number(/took ([\d.]+) s/.exec(capped.stdout)?.[1]);
  assert.ok(cappedSeconds >= 2, `capped at 2: ${cappedSeconds} s`);
  await Deno.remove(free.dir, { recursive: true });
});

Deno.test("example sandbox", async () => {
  const result = await example("sandbox.ts");
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /notes: kept between calls/);
  assert.match(result.stdout, /call in reports for demo/);
  assert.match(result.stdout, /concurrent calls: a b/);
  assert.match(result.stdout, /allowed failure exited with 2/);
  await Deno.remove(result.dir, { recursive: true });
});

Deno.test("example allow-failure", async () => {
  const result = await example("allow-failure.ts");
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /optional-check: status=failure code=3/);
  assert.match(
    result.stdout,
    /required-check rejected: task "required-check" failed with exit code 1/,
  );
  assert.match(result.stderr, /failure \(allowed\)/);
  await Deno.remove(result.dir, { recursive: true });
});

Deno.test("example timeout", async () => {
  const result = await example("timeout.ts");
  assert.equal(result.code, 0, result.stderr);
  const ms = Number(/slow: timeout after (\d+) ms/.exec(result.stdout)?.[1]);
  assert.ok(ms >= 1000 && ms < 5000, `stopped after ${ms} ms`);
  assert.match(result.stdout, /tolerated: timeout/);
  await Deno.remove(result.dir, { recursive: true });
});

Deno.test("example secrets: masked in live output and in what the pipeline sees", async () => {
  const result = await example("secrets.ts", ["--secret", "API_TOKEN"], {
    API_TOKEN: "t0ps3cret-token",
  });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /deploy \| deploying with token \*\*\*/);
  assert.match(result.stdout, /the pipeline sees: deploying with token \*\*\*/);
  assert.match(result.stdout, /token length: 15/);
  assert.doesNotMatch(result.stdout + result.stderr, /t0ps3cret-token/);
  const missing = await runCli(["run", `${result.dir}/secrets.ts`], {
    env: { POCKETCI_STATE_DIR: `${result.dir}/.state` },
  });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /--secret API_TOKEN/);
  await Deno.remove(result.dir, { recursive: true });
});

Deno.test({
  name: "examples run on the docker driver too (busybox image)",
  ignore: ignoreDocker,
  fn: async () => {
    assertEngine();
    for (
      const [name, expected] of [
        ["hello-world.ts", /greet \| hello from docker/],
        ["sandbox.ts", /notes: kept between calls/],
        ["host-directory.ts", /index\.html has \d+ characters/],
      ] as const
    ) {
      const result = await example(name, ["--driver=docker"]);
      assert.equal(result.code, 0, `${name}: ${result.stderr}`);
      assert.match(result.stdout, expected);
      await Deno.remove(result.dir, { recursive: true });
    }
  },
});

Deno.test("example retry: attempts, `when`, and steps on failure and always", async () => {
  const result = await example("retry.ts", [], { ...NO_FOLDING });
  checkRetryText(result);
  checkRetryJson(
    await runCli(["run", "--json", `${result.dir}/retry.ts`], {
      env: { POCKETCI_STATE_DIR: `${result.dir}/.state` },
    }),
  );
  await Deno.remove(result.dir, { recursive: true });
});

Deno.test("example groups: folded in GitHub Actions, timestamped, group events in --json", async () => {
  const result = await example("groups.ts", ["--timestamps"], {
    ...NO_FOLDING,
    GITHUB_ACTIONS: "true",
  });
  checkGroupsText(result);
  checkGroupsJson(
    await runCli(["run", "--json", `${result.dir}/groups.ts`], {
      env: { POCKETCI_STATE_DIR: `${result.dir}/.state` },
    }),
  );
  await Deno.remove(result.dir, { recursive: true });
});

Deno.test("example services: an http-ready busybox httpd service used by a task through hostPort, stopped at the end", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const result = await example("services.ts", ["--", String(port)]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(
    result.stdout,
    new RegExp(`the test task got \\{"status":"ok"\\} from http://127\\.0\\.0\\.1:${port}/health`),
  );
  assert.match(result.stdout, /^web \| starting in a second$/m);
  assert.match(result.stderr, /✓ web \(service\) ready/);
  assert.match(result.stdout, /the service printed \d+ lines, the first: starting in a second/);
  await assert.rejects(
    () => Deno.connect({ hostname: "127.0.0.1", port }),
    "the service was stopped",
  );
  await Deno.remove(result.dir, { recursive: true });
});

Deno.test({
  name:
    "example services with --service-driver=docker: the native task reaches the service container at 127.0.0.1:hostPort; the container is removed",
  ignore: ignoreDocker,
  fn: async () => {
    assertEngine();
    const result = await example("services.ts", ["--json", "--service-driver=docker"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const events = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
    const logs = events.filter((event) => event.type === "log").map((event) => event.message);
    const got = logs.map((line) =>
      /^the test task got \{"status":"ok"\} from http:\/\/127\.0\.0\.1:(\d+)\/health$/.exec(line)
    ).find((match) => match !== null);
    assert.ok(got, logs.join("\n"));
    const ready = events.find((event) => event.type === "service.ready");
    assert.equal(Number(got[1]), ready.hostPorts["8080"], "the port docker published for 8080");
    const start = events.find((event) => event.type === "run.start");
    assert.deepEqual([start.driver, start.serviceDriver], ["native", "docker"]);
    const { default: Docker } = await import("dockerode");
    const { LABEL } = await import("../drivers/docker/labels.ts");
    const docker = new Docker({ socketPath: "/var/run/docker.sock" });
    const left = await docker.listContainers({
      all: true,
      filters: { label: [`${LABEL.run}=${start.runId}`] },
    });
    assert.deepEqual(left.map((c: { Names: string[] }) => c.Names), [], "the container is gone");
    await Deno.remove(result.dir, { recursive: true });
  },
});
