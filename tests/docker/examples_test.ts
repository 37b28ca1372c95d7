/**
 * Every example pipeline on the docker driver, through the CLI (hello-world, sandbox and
 * host-directory also run on docker in tests/examples_test.ts; this file covers the rest, plus
 * `pocketci gc --driver=docker` removing the cache example's cache).
 *
 * @module
 */

import assert from "node:assert/strict";
// @ts-types="npm:@types/dockerode@^3"
import Docker from "dockerode";
import { LABEL } from "../../drivers/docker/labels.ts";
import { runCli } from "../helpers/cli.ts";
import {
  checkGroupsJson,
  checkGroupsText,
  checkRetryText,
  NO_FOLDING,
} from "../helpers/example_checks.ts";
import { assertEngine, ignoreDocker } from "./engine_fixture.ts";

const EXAMPLES = new URL("../../examples/", import.meta.url).pathname;

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name: `docker examples: ${name}`, ignore: ignoreDocker, fn });

async function copyExamples(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-docker-examples-" });
  for await (const entry of Deno.readDir(EXAMPLES)) {
    if (entry.isFile) await Deno.copyFile(`${EXAMPLES}/${entry.name}`, `${dir}/${entry.name}`);
  }
  return dir;
}

/** The cache volumes named `name` that this test process created. */
async function cacheVolumes(docker: Docker, name: string): Promise<Docker.VolumeInspectInfo[]> {
  const { Volumes } = await docker.listVolumes({
    filters: { label: [`${LABEL.kind}=cache`, `${LABEL.name}=${name}`] },
  });
  return (Volumes ?? []).filter((v) =>
    Date.parse((v as { CreatedAt?: string }).CreatedAt ?? "") >= performance.timeOrigin - 1000
  );
}

async function example(
  dir: string,
  name: string,
  args: string[] = [],
  env: Record<string, string> = {},
) {
  return await runCli(["run", `${dir}/${name}`, "--driver=docker", ...args], {
    env: { POCKETCI_STATE_DIR: `${dir}/.state`, ...env },
  });
}

test("parallel, allow-failure, timeout and secrets", async () => {
  assertEngine();
  const dir = await copyExamples();
  try {
    const parallel = await example(dir, "parallel.ts");
    assert.equal(parallel.code, 0, parallel.stderr);
    assert.equal((parallel.stdout.match(/passed/g) ?? []).length, 8);
    const allowFailure = await example(dir, "allow-failure.ts");
    assert.equal(allowFailure.code, 0, allowFailure.stderr);
    assert.match(allowFailure.stdout, /optional-check: status=failure code=3/);
    assert.match(
      allowFailure.stdout,
      /required-check rejected: task "required-check" failed with exit code 1/,
    );
    const timeout = await example(dir, "timeout.ts");
    assert.equal(timeout.code, 0, timeout.stderr);
    const ms = Number(/slow: timeout after (\d+) ms/.exec(timeout.stdout)?.[1]);
    assert.ok(ms >= 1000 && ms < 5000, `stopped after ${ms} ms`);
    assert.match(timeout.stdout, /tolerated: timeout/);
    const secrets = await example(dir, "secrets.ts", ["--secret", "API_TOKEN"], {
      API_TOKEN: "t0ps3cret-token",
    });
    assert.equal(secrets.code, 0, secrets.stderr);
    assert.match(secrets.stdout, /deploy \| deploying with token \*\*\*/);
    assert.doesNotMatch(secrets.stdout + secrets.stderr, /t0ps3cret-token/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("cache: the second run hits the cache volume; gc --cache-ttl removes it", async () => {
  assertEngine();
  const dir = await copyExamples();
  const docker = new Docker({ socketPath: "/var/run/docker.sock" });
  try {
    const first = await example(dir, "cache.ts");
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /cache miss/);
    const second = await example(dir, "cache.ts");
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /cache hit: built at/);
    const caches = () => cacheVolumes(docker, "downloads");
    assert.equal((await caches()).length, 1, "the cache is a Docker volume that outlives the run");
    const kept = await runCli(["gc", "--driver=docker", `--state-dir=${dir}/.state`], {});
    assert.equal(kept.code, 0, kept.stderr);
    assert.equal((await caches()).length, 1, "gc keeps a cache used recently");
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const gc = await runCli([
      "gc",
      "--driver=docker",
      "--cache-ttl=1s",
      `--state-dir=${dir}/.state`,
    ], {});
    assert.equal(gc.code, 0, gc.stdout + gc.stderr);
    assert.deepEqual(await caches(), [], `gc --cache-ttl=1s should remove the cache: ${gc.stdout}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("keyed-cache: a miss, the exact key, a restore after the lockfile changed; gc --cache-max removes them", async () => {
  assertEngine();
  const dir = await copyExamples();
  const docker = new Docker({ socketPath: "/var/run/docker.sock" });
  try {
    const first = await example(dir, "keyed-cache.ts");
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /cache deps: miss\n/);
    const second = await example(dir, "keyed-cache.ts");
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /cache deps: exact\n/);
    const oldKey = /reusing what was installed for (deps-[0-9a-f]{64})/.exec(second.stdout)?.[1];
    assert.ok(oldKey, second.stdout);
    await Deno.writeTextFile(`${dir}/keyed-cache.lock`, "left-pad 1.3.1\n");
    const third = await example(dir, "keyed-cache.ts");
    assert.equal(third.code, 0, third.stderr);
    assert.match(third.stdout, new RegExp(`cache deps: restored \\(from ${oldKey}\\)`));
    assert.match(third.stdout, new RegExp(`reusing what was installed for ${oldKey}`));
    const caches = () => cacheVolumes(docker, "deps");
    assert.equal((await caches()).length, 2, "one volume per key");
    const gc = await runCli([
      "gc",
      "--driver=docker",
      "--cache-max=1",
      `--state-dir=${dir}/.state`,
    ]);
    assert.equal(gc.code, 0, gc.stdout + gc.stderr);
    assert.deepEqual(await caches(), [], `gc --cache-max=1 should remove both: ${gc.stdout}`);
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

test("services: a task reaches the http-ready service by its name; the container is removed", async () => {
  assertEngine();
  const dir = await copyExamples();
  try {
    const result = await example(dir, "services.ts");
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(
      result.stdout,
      /the test task got \{"status":"ok"\} from http:\/\/web:8080\/health/,
    );
    assert.match(result.stdout, /^web \| starting in a second$/m);
    const runId = /logs\/([a-z0-9]+)\s*$/m.exec(result.stderr)?.[1];
    assert.ok(runId, `the run's ID in: ${result.stderr}`);
    const docker = new Docker({ socketPath: "/var/run/docker.sock" });
    const left = await docker.listContainers({
      all: true,
      filters: { label: [`${LABEL.run}=${runId}`] },
    });
    assert.deepEqual(left.map((c) => c.Names), [], "the run's containers are gone");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
