/**
 * The example pipelines on the fly driver through the CLI, against the fake Machines API in an
 * existing app (so the cache examples keep their caches): hello-world, host-directory, parallel,
 * allow-failure, timeout, secrets, sandbox, cache (then `pocketci gc --cache-ttl` removing it),
 * retry, groups and services (a service machine reached by name from a task machine).
 *
 * @module
 */

import assert from "node:assert/strict";
import { runCli } from "../helpers/cli.ts";
import {
  checkGroupsJson,
  checkGroupsText,
  checkRetryText,
  NO_FOLDING,
} from "../helpers/example_checks.ts";
import { assertEngine, FAKE_TOKEN, fakeLeftovers, ignoreFly, startFake } from "./fake_fixture.ts";

const EXAMPLES = new URL("../../examples/", import.meta.url).pathname;
const APP = "pocketci-examples";
const fake = ignoreFly ? undefined : startFake();
fake?.addApp(APP);

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name: `fly examples: ${name}`, ignore: ignoreFly, fn });

async function copyExamples(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-fly-examples-" });
  for await (const entry of Deno.readDir(EXAMPLES)) {
    if (entry.isFile) await Deno.copyFile(`${EXAMPLES}/${entry.name}`, `${dir}/${entry.name}`);
  }
  await Deno.mkdir(`${dir}/site`);
  for await (const entry of Deno.readDir(`${EXAMPLES}/site`)) {
    if (entry.isFile) {
      await Deno.copyFile(`${EXAMPLES}/site/${entry.name}`, `${dir}/site/${entry.name}`);
    } else if (entry.isDirectory) {
      await Deno.mkdir(`${dir}/site/${entry.name}`);
      for await (const inner of Deno.readDir(`${EXAMPLES}/site/${entry.name}`)) {
        await Deno.copyFile(
          `${EXAMPLES}/site/${entry.name}/${inner.name}`,
          `${dir}/site/${entry.name}/${inner.name}`,
        );
      }
    }
  }
  return dir;
}

const ENV = () => ({ FLY_API_URL: fake!.url, FLY_LOGS_URL: fake!.url, FLY_API_TOKEN: FAKE_TOKEN });

async function example(
  dir: string,
  name: string,
  args: string[] = [],
  env: Record<string, string> = {},
) {
  return await runCli(["run", `${dir}/${name}`, `--driver=fly:app=${APP}`, ...args], {
    env: { POCKETCI_STATE_DIR: `${dir}/.state`, ...ENV(), ...env },
  });
}

test("hello-world, host-directory, parallel, allow-failure, timeout, secrets and sandbox", async () => {
  assertEngine();
  const dir = await copyExamples();
  try {
    const hello = await example(dir, "hello-world.ts");
    assert.equal(hello.code, 0, hello.stdout + hello.stderr);
    assert.match(hello.stdout, /greet \| hello from fly/);
    assert.match(hello.stdout, /the task said: hi, CI=true/);
    const site = await example(dir, "host-directory.ts");
    assert.equal(site.code, 0, site.stdout + site.stderr);
    assert.match(site.stdout, /index\.html has \d+ characters/);
    const exported = (await Array.fromAsync(Deno.readDir(`${dir}/site-out`))).map((e) => e.name)
      .sort();
    assert.deepEqual(exported, ["about.html", "index.html"]);
    const parallel = await example(dir, "parallel.ts");
    assert.equal(parallel.code, 0, parallel.stderr);
    assert.equal((parallel.stdout.match(/passed/g) ?? []).length, 8);
    const allowFailure = await example(dir, "allow-failure.ts");
    assert.equal(allowFailure.code, 0, allowFailure.stderr);
    assert.match(allowFailure.stdout, /optional-check: status=failure code=3/);
    const timeout = await example(dir, "timeout.ts");
    assert.equal(timeout.code, 0, timeout.stderr);
    assert.match(timeout.stdout, /tolerated: timeout/);
    const secrets = await example(dir, "secrets.ts", ["--secret", "API_TOKEN"], {
      API_TOKEN: "t0ps3cret-token",
    });
    assert.equal(secrets.code, 0, secrets.stderr);
    assert.match(secrets.stdout, /deploy \| deploying with token \*\*\*/);
    assert.doesNotMatch(secrets.stdout + secrets.stderr, /t0ps3cret-token/);
    const sandbox = await example(dir, "sandbox.ts");
    assert.equal(sandbox.code, 0, sandbox.stdout + sandbox.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("cache: the second run hits the Fly volume; gc --cache-ttl removes it", async () => {
  assertEngine();
  const dir = await copyExamples();
  try {
    const first = await example(dir, "cache.ts");
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /cache miss/);
    const second = await example(dir, "cache.ts");
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /cache hit: built at/);
    const caches = () => fake!.apps.get(APP)!.volumes.size;
    assert.equal(caches(), 1, "the cache is a Fly volume that outlives the run");
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const gc = await runCli([
      "gc",
      `--driver=fly:app=${APP}`,
      "--cache-ttl=1s",
      `--state-dir=${dir}/.state`,
    ], { env: ENV() });
    assert.equal(gc.code, 0, gc.stdout + gc.stderr);
    assert.equal(caches(), 0, `gc --cache-ttl=1s should remove the cache: ${gc.stdout}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("retry and groups", async () => {
  assertEngine();
  const dir = await copyExamples();
  try {
    checkRetryText(await example(dir, "retry.ts", [], { ...NO_FOLDING }));
    checkGroupsText(
      await example(dir, "groups.ts", ["--timestamps"], { ...NO_FOLDING, GITHUB_ACTIONS: "true" }),
    );
    checkGroupsJson(await example(dir, "groups.ts", ["--json"]));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("services: the task machine reaches the service machine by its name", async () => {
  assertEngine();
  const dir = await copyExamples();
  try {
    const services = await example(dir, "services.ts");
    assert.equal(services.code, 0, services.stderr + services.stdout);
    assert.match(
      services.stdout,
      /the test task got \{"status":"ok"\} from http:\/\/web:8080\/health/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("nothing is left on the fake", async () => {
  const machines = fake!.liveMachines().map((m) => m.name);
  const volumes = fake!.allVolumes().map((v) => v.name);
  await fake!.close();
  assert.deepEqual({ machines, volumes }, { machines: [], volumes: [] });
  assert.deepEqual(await fakeLeftovers(fake!), []);
});
