/**
 * Pipeline-level conformance: real pipelines run through the runner (programmatic
 * API, pipeline in a Worker) against one driver, covering results and statuses,
 * allowFailure, timeouts, cancellation, environment, mounts, volumes, caches,
 * sandboxes, secret masking, parallelism and exit codes.
 *
 * Every later driver calls {@link definePipelineConformance} with its DSN.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { DriverCapabilities } from "../../drivers/contract.ts";
import type { RunEvent } from "../../runner/events.ts";
import { collectGarbage } from "../../runner/gc.ts";
import { getDriverFactory } from "../../drivers/registry.ts";
import {
  endsByName,
  type HarnessOptions,
  type HarnessResult,
  loggedJson,
  resolveDriver,
  runPipelineSource,
} from "../helpers/pipeline_harness.ts";

/** `pocketci gc` for the tested driver with a cache TTL of 1 ms, as of `now`. */
async function collectCaches(
  driver: string,
  pipelinePath: string,
  stateDir: string,
  now?: Date,
): ReturnType<typeof collectGarbage> {
  return await collectGarbage({
    stateDir,
    dsn: await resolveDriver(driver, pipelinePath),
    defaultDsn: () => {
      throw new Error("only the tested driver is collected");
    },
    factory: getDriverFactory,
    cacheTtlMs: 1,
    dryRun: false,
    now,
  });
}

/** Options of the pipeline conformance suite. */
export interface PipelineConformanceOptions {
  /** The driver string (DSN). */
  readonly driver: string;
  /** An image with a POSIX shell and busybox-like tools. */
  readonly image: string;
  /** What the driver claims. */
  readonly capabilities: DriverCapabilities;
  /** Skip every test (with the reason) instead of running; only outside CI. */
  readonly ignore?: boolean;
  /**
   * Whether absolute mount paths are honoured (default: when images are, as containers do;
   * a VM driver honours them without images).
   */
  readonly absoluteMounts?: boolean;
  /** The driver takes numeric users only (k8s): the user check runs as uid 65534. */
  readonly numericUser?: boolean;
}

/** Registers the pipeline conformance tests for one driver. */
export function definePipelineConformance(options: PipelineConformanceOptions): void {
  const caps = options.capabilities;
  const prefix = `pipeline conformance [${options.driver}]`;
  const image = JSON.stringify(options.image);
  const header =
    `import { cache, pipeline, sandbox, secret, task, TaskError, volume } from "pocketci";
const IMAGE = ${image};
const t = (name: string) => task(name).image(IMAGE);
const out = (marker: string, value: unknown) => console.log(marker + " " + JSON.stringify(value));
`;
  const run = (body: string, extra: HarnessOptions = {}): Promise<HarnessResult> =>
    runPipelineSource(header + body, { driver: options.driver, graceMs: 3000, ...extra });
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({
      name: `${prefix}: ${name}`,
      ignore: options.ignore,
      sanitizeOps: false,
      sanitizeResources: false,
      fn,
    });
  const cleanup = async (result: HarnessResult) => {
    assert.deepEqual(result.outcome.leftovers, [], "the run left resources behind");
    await Deno.remove(result.dir, { recursive: true }).catch(() => {});
  };

  test("a pipeline using every feature passes under the narrowed permissions of `pocketci run`", async () => {
    const dir = await Deno.makeTempDir({ prefix: "pocketci-pipeline-" });
    await Deno.mkdir(`${dir}/src`);
    await Deno.writeTextFile(`${dir}/src/input.txt`, "from the host");
    await Deno.writeTextFile(
      `${dir}/pipeline.ts`,
      header + `export default pipeline("narrowed", async () => {
        const src = await volume("src", { from: "./src" });
        await src.writeFiles({ "extra.txt": "written" });
        const built = await t("build").mount(src, "src").env({ TOKEN: secret("TOKEN") })
          .sh("cat src/input.txt src/extra.txt; mkdir -p src/dist; echo built > src/dist/out.txt; echo $TOKEN");
        out("BUILD", built.stdout);
        out("FILES", await src.readFiles(["dist"]));
        await src.exportTo("./exported", { path: "dist" });
        if (${caps.caches}) {
          const c = await cache("narrowed-cache");
          await t("cache").mount(c, "c").sh("echo cached > c/f");
        }
        if (${caps.sandboxes}) {
          await using box = await sandbox("box").image(IMAGE).start();
          await box.sh("mkdir -p sub && echo kept > sub/f");
          out("BOX", (await box.workDir("sub").run("cat", "f")).stdout);
        }
      });`,
    );
    const { runCli } = await import("../helpers/cli.ts");
    const result = await runCli(
      ["run", `--driver=${options.driver}`, "--secret", "TOKEN", `${dir}/pipeline.ts`],
      { env: { POCKETCI_STATE_DIR: `${dir}/.state`, TOKEN: "narrowed-secret-value" } },
    );
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /BUILD "from the hostwritten\*\*\*\\n"/);
    assert.doesNotMatch(result.stdout + result.stderr, /narrowed-secret-value/);
    assert.match(result.stdout, /FILES \{"dist\/out\.txt":"built\\n"\}/);
    assert.equal(await Deno.readTextFile(`${dir}/exported/out.txt`), "built\n");
    if (caps.sandboxes) assert.match(result.stdout, /BOX "kept\\n"/);
    if (caps.caches) {
      await collectCaches(
        options.driver,
        `${dir}/pipeline.ts`,
        `${dir}/.state`,
        new Date(Date.now() + 60_000),
      );
    }
    await Deno.remove(dir, { recursive: true });
  });

  test("a successful task resolves with its result", async () => {
    const result = await run(`export default pipeline("p", async () => {
      const r = await t("hello").sh("echo out; echo err >&2");
      out("R", r);
    });`);
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    const r = loggedJson<Record<string, unknown>>(result.logs, "R");
    assert.equal(r.name, "hello");
    assert.equal(typeof r.id, "string");
    assert.equal(r.code, 0);
    assert.equal(r.status, "success");
    assert.equal(typeof r.durationMs, "number");
    if (caps.separateStderr) {
      assert.equal(r.stdout, "out\n");
      assert.equal(r.stderr, "err\n");
    } else {
      assert.match(String(r.stdout) + String(r.stderr), /out/);
    }
    assert.match(result.stdout, /hello \| out/);
    assert.match(result.stderr, /TASK\s+STATUS\s+CODE\s+TOTAL\s+RUN\s+\(driver: \w+\)/);
    await cleanup(result);
  });

  test("non-zero exit rejects with TaskError; allowFailure resolves; error and signal codes", async () => {
    const result = await run(`export default pipeline("p", async () => {
      const failed = await t("fails").sh("exit 3").then(() => "resolved", (e) => e instanceof TaskError ? e.result : String(e));
      const allowed = await t("allowed").allowFailure().sh("exit 3");
      const missing = await t("missing").allowFailure().run("pocketci-no-such-command-xyz").then(() => "resolved", (e) => e instanceof TaskError ? e.result : String(e));
      const killed = await t("killed").allowFailure().sh("kill -9 $$");
      out("R", { failed, allowed, missing, killed });
    });`);
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    const r = loggedJson<Record<string, { status: string; code: number | null; error?: string }>>(
      result.logs,
      "R",
    );
    assert.equal(r.failed.status, "failure");
    assert.equal(r.failed.code, 3);
    assert.equal(r.allowed.status, "failure");
    assert.equal(r.allowed.code, 3);
    assert.equal(
      r.missing.status,
      "error",
      "a command that cannot run is an error, even with allowFailure",
    );
    assert.equal(r.missing.code, null);
    assert.match(String(r.missing.error), /pocketci-no-such-command-xyz/);
    assert.equal(r.killed.status, "failure");
    assert.equal(r.killed.code, 137);
    await cleanup(result);
  });

  test("a task timeout stops it and rejects with status timeout; counts from start, not queueing", async () => {
    const started = performance.now();
    const result = await run(
      `export default pipeline("p", async () => {
      const slow = await t("slow").timeout("500ms").sh("sleep 20").then(() => "resolved", (e) => e.result);
      const allowed = await t("allowed-slow").timeout("300ms").allowFailure().sh("sleep 20");
      const [a, b] = await Promise.all([
        t("blocker").sh("sleep 1.2"),
        t("queued").timeout("800ms").sh("sleep 0.1"),
      ]);
      out("R", { slow, allowed, queued: b.status });
    });`,
      { parallelism: 1 },
    );
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    const r = loggedJson<{ slow: { status: string }; allowed: { status: string }; queued: string }>(
      result.logs,
      "R",
    );
    assert.equal(r.slow.status, "timeout");
    assert.equal(r.allowed.status, "timeout");
    assert.equal(
      r.queued,
      "success",
      "the timeout must not count the time spent waiting for a slot",
    );
    assert.ok(performance.now() - started < 15_000, "timeouts must stop the tasks promptly");
    await cleanup(result);
  });

  test("tasks left running when the pipeline returns are cancelled; only .background() ones keep the run green", async () => {
    const started = performance.now();
    const result = await run(`export default pipeline("p", async () => {
      t("left-running").background().sh("sleep 30").catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 500));
    });`);
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    const end = endsByName(result.events).get("left-running");
    assert.equal(end?.status, "cancelled");
    assert.ok(performance.now() - started < 15_000);
    await cleanup(result);
    const forgotten = await run(`export default pipeline("p", async () => {
      t("forgotten").sh("sleep 30").catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 500));
    });`);
    assert.equal(forgotten.outcome.exitCode, 1, forgotten.stderr);
    assert.equal(endsByName(forgotten.events).get("forgotten")?.status, "cancelled");
    assert.match(String(forgotten.outcome.error), /task "forgotten" was still running.*`await` it/);
    await cleanup(forgotten);
  });

  test("every task sees CI, POCKETCI, POCKETCI_RUN_ID, POCKETCI_TASK and its env, not the host's", async () => {
    Deno.env.set("POCKETCI_CONFORMANCE_LEAK", "leaked-value");
    try {
      const result = await run(`export default pipeline("p", async () => {
        const r = await t("env-task").env({ FOO: "bar baz" }).run("env");
        out("R", r.stdout);
      });`);
      assert.equal(result.outcome.exitCode, 0, result.stderr);
      const env = loggedJson<string>(result.logs, "R");
      assert.match(env, /^CI=true$/m);
      assert.match(env, /^POCKETCI=true$/m);
      assert.match(env, new RegExp(`^POCKETCI_RUN_ID=${result.outcome.runId}$`, "m"));
      assert.match(env, /^POCKETCI_TASK=env-task$/m);
      assert.match(env, /^FOO=bar baz$/m);
      assert.doesNotMatch(env, /POCKETCI_CONFORMANCE_LEAK/);
      await cleanup(result);
    } finally {
      Deno.env.delete("POCKETCI_CONFORMANCE_LEAK");
    }
  });

  test("volumes: relative mounts and workDir both relative to the default directory, shared between tasks", async () => {
    const result = await run(`export default pipeline("p", async () => {
      const data = await volume("data");
      await t("writer").mount(data, "data").sh("mkdir -p data/sub && echo world > data/sub/hello.txt");
      const read = await t("reader").mount(data, "mnt/data").sh("cat mnt/data/sub/hello.txt");
      const inWorkDir = await t("workdir").workDir("w").mount(data, "m").sh("cat ../m/sub/hello.txt; test -e m || echo no-m; basename $(pwd)");
      out("R", { read: read.stdout, inWorkDir: inWorkDir.stdout, files: await data.readFiles(["sub"]) });
    });`);
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    const r = loggedJson<{ read: string; inWorkDir: string; files: Record<string, string> }>(
      result.logs,
      "R",
    );
    assert.equal(r.read, "world\n");
    assert.equal(
      r.inWorkDir,
      "world\nno-m\nw\n",
      "a relative mount path is relative to the default directory, not to workDir",
    );
    assert.deepEqual(r.files, { "sub/hello.txt": "world\n" });
    await cleanup(result);
  });

  test('the issue\'s shape: .mount(src, "src").mount(deps, ...).workDir("src") works inside the volume', async () => {
    // Containers honour the absolute cache path; native refuses absolute mounts, so
    // there the cache hangs off the task's directory like src.
    const depsPath = caps.images ? "/root/.pocketci-deps" : "deps";
    const result = await run(
      `export default pipeline("p", async () => {
      const src = await volume("src", { from: "./project", exclude: ["node_modules"] });
      const deps = await volume("deps"); // a volume, not a cache: nothing outlives the test
      const node = t("t").mount(src, "src").mount(deps, ${JSON.stringify(depsPath)}).workDir("src");
      const list = await node.run("ls", "-A");
      const [build, lib] = await Promise.all([
        node.env({ X: "1" }).sh("cat package.json; mkdir -p dist && echo $X > dist/out.txt"),
        node.run("cat", "lib/a.txt"),
      ]);
      const sub = await node.workDir("src/lib").sh("cat a.txt");
      const fresh = await t("fresh").workDir("made/here").sh("pwd");
      out("R", { list: list.stdout, build: build.stdout, lib: lib.stdout, sub: sub.stdout, fresh: fresh.stdout, files: await src.readFiles(["dist/out.txt"]) });
    });`,
      {
        files: {
          "project/package.json": "{}",
          "project/lib/a.txt": "a",
          "project/node_modules/x": "x",
        },
      },
    );
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    const r = loggedJson<
      {
        list: string;
        build: string;
        lib: string;
        sub: string;
        fresh: string;
        files: Record<string, string>;
      }
    >(result.logs, "R");
    assert.equal(r.list, "lib\npackage.json\n", 'workDir("src") did not land in the volume');
    assert.equal(r.build, "{}");
    assert.equal(r.lib, "a");
    assert.equal(r.sub, "a", 'workDir("src/lib") is relative to the default directory');
    assert.match(r.fresh, /\/made\/here\n$/, "a missing relative workDir is created");
    assert.deepEqual(r.files, { "dist/out.txt": "1\n" });
    await cleanup(result);
  });

  test("each task gets a fresh working directory; absolute mounts where the driver can", async () => {
    const result = await run(`export default pipeline("p", async () => {
      const data = await volume("abs");
      await t("first").sh("echo x > leftover.txt");
      const second = await t("second").allowFailure().sh("test ! -e leftover.txt");
      const absolute = await t("absolute").mount(data, "/mnt/pocketci-abs").sh("echo ok > /mnt/pocketci-abs/f; cat /mnt/pocketci-abs/f")
        .then((r) => r, (e) => e.result);
      out("R", { fresh: second.code, absolute });
    });`);
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    const r = loggedJson<
      { fresh: number; absolute: { status: string; stdout: string; error?: string } }
    >(
      result.logs,
      "R",
    );
    assert.equal(r.fresh, 0, "a file from another task's working directory is not visible");
    if (options.absoluteMounts ?? caps.images) {
      assert.equal(r.absolute.status, "success", r.absolute.error);
      assert.equal(r.absolute.stdout, "ok\n");
    } else {
      assert.equal(r.absolute.status, "error", "no silent remap of an absolute mount");
      assert.match(String(r.absolute.error), /absolute/);
    }
    await cleanup(result);
  });

  test("volumes: seeded from a host directory (binary-safe, excludes), readFile, writeFiles, exportTo", async () => {
    const result = await run(
      `export default pipeline("p", async () => {
      const src = await volume("src", { from: "./project", exclude: ["node_modules", "*.log"] });
      const listing = await t("list").mount(src, "src").sh("cd src && find . -type f | sort");
      await t("build").mount(src, "src").sh("mkdir -p src/dist && cp src/a.txt src/dist/out.txt");
      await src.writeFiles({ "dist/extra/new.txt": "written" });
      await src.exportTo("./out", { path: "dist" });
      await src.exportTo("./all");
      const outside = await src.exportTo("/tmp/pocketci-conformance-outside").then(() => "exported", (e) => e.message);
      const outsideFrom = await volume("bad", { from: "/etc" }).then(() => "seeded", (e) => e.message);
      out("R", { listing: listing.stdout, outside, outsideFrom });
    });`,
      {
        files: {
          "project/a.txt": "alpha",
          "project/node_modules/x.js": "x",
          "project/debug.log": "l",
        },
      },
    );
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    const r = loggedJson<{ listing: string; outside: string; outsideFrom: string }>(
      result.logs,
      "R",
    );
    assert.match(r.listing, /\.\/a\.txt/);
    assert.doesNotMatch(r.listing, /node_modules|debug\.log/);
    assert.equal(await Deno.readTextFile(`${result.dir}/out/out.txt`), "alpha");
    assert.equal(await Deno.readTextFile(`${result.dir}/out/extra/new.txt`), "written");
    assert.equal(await Deno.readTextFile(`${result.dir}/all/a.txt`), "alpha");
    assert.match(r.outside, /--allow-write/);
    assert.match(r.outsideFrom, /--allow-read/);
    await cleanup(result);
  });

  test("volumes: binary files survive a round trip byte for byte", async () => {
    const dir = await Deno.makeTempDir({ prefix: "pocketci-pipeline-" });
    await Deno.mkdir(`${dir}/in`);
    await Deno.writeFile(
      `${dir}/in/bin.dat`,
      new Uint8Array(Array.from({ length: 256 }, (_, i) => i)),
    );
    const result = await run(
      `export default pipeline("p", async () => {
      const v = await volume("bin", { from: "./in" });
      await t("copy").mount(v, "v").sh("cp v/bin.dat v/copy.dat");
      out("R", Array.from(await v.readFile("copy.dat")));
      await v.exportTo("./back");
    });`,
      { dir },
    );
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    const expected = Array.from({ length: 256 }, (_, i) => i);
    assert.deepEqual(loggedJson<number[]>(result.logs, "R"), expected);
    assert.deepEqual(Array.from(await Deno.readFile(`${dir}/back/copy.dat`)), expected);
    await cleanup(result);
  });

  test(
    caps.caches ? "caches persist across runs of the same pipeline" : "cache() is refused clearly",
    async () => {
      const dir = await Deno.makeTempDir({ prefix: "pocketci-pipeline-" });
      const body = `export default pipeline("p", async () => {
      const c = await cache("conformance-cache");
      const r = await t("use-cache").mount(c, "c").sh("cat c/count 2>/dev/null || echo 0; echo $(( $(cat c/count 2>/dev/null || echo 0) + 1 )) > c/count");
      out("R", r.stdout.trim());
    });`;
      const first = await run(body, { dir });
      if (!caps.caches) {
        assert.equal(first.outcome.exitCode, 1);
        assert.match(first.outcome.error ?? "", /caches/);
        await Deno.remove(dir, { recursive: true });
        return;
      }
      assert.equal(first.outcome.exitCode, 0, first.stderr);
      const second = await run(body, { dir });
      assert.equal(second.outcome.exitCode, 0, second.stderr);
      const before = Number(loggedJson<string>(first.logs, "R"));
      assert.equal(Number(loggedJson<string>(second.logs, "R")), before + 1);
      // gc removes the cache once it has been unused for longer than the TTL.
      const collect = (stateDir: string, now?: Date) =>
        collectCaches(options.driver, `${dir}/pipeline.ts`, stateDir, now);
      const report = await collect(second.stateDir, new Date(Date.now() + 60_000));
      assert.deepEqual(report.problems, []);
      assert.ok(
        report.actions.some((action) =>
          action.action === "removed" && action.resource.kind === "cache"
        ),
        JSON.stringify(report.actions),
      );
      const third = await run(body, { dir });
      assert.equal(Number(loggedJson<string>(third.logs, "R")), 0, "the cache was removed");
      await collect(third.stateDir, new Date(Date.now() + 60_000));
      await cleanup(third);
    },
  );

  if (caps.caches) {
    test("keyed caches: miss, then exact hit; a changed lockfile restores the newest prefix match", async () => {
      const dir = await Deno.makeTempDir({ prefix: "pocketci-pipeline-" });
      await Deno.writeTextFile(`${dir}/deps.lock`, "v1\n");
      const body = `import { hashFiles } from "pocketci";
      export default pipeline("p", async () => {
        const c = await cache("keyed-conformance", {
          key: ["deps", await hashFiles("deps.lock")],
          restoreKeys: ["deps-"],
        });
        const r = await t("use").mount(c, "c").env({ KEY: c.key ?? "" })
          .sh('cat c/seen 2>/dev/null || echo none; echo "$KEY" > c/seen');
        out("R", { hit: c.hit, key: c.key, restored: c.restoredKey ?? null, before: r.stdout.trim() });
        out("EMPTY", await hashFiles("missing-*.txt"));
      });`;
      const lockHash = async (content: string) => {
        const bytes = new TextEncoder().encode(`deps.lock\0${content.length}\0${content}`);
        const digest = await crypto.subtle.digest("SHA-256", bytes);
        return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
      };
      const key1 = `deps-${await lockHash("v1\n")}`;
      const result = async () => {
        const r = await run(body, { dir });
        assert.equal(r.outcome.exitCode, 0, r.stderr);
        return { r, out: loggedJson<Record<string, unknown>>(r.logs, "R") };
      };
      const first = await result();
      assert.deepEqual(first.out, { hit: "miss", key: key1, restored: null, before: "none" });
      assert.equal(
        loggedJson<string>(first.r.logs, "EMPTY"),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      );
      const logged = first.r.events.flatMap((e) => e.type === "log" ? [e.message] : []);
      assert.ok(
        logged.includes(
          `cache keyed-conformance: miss on key ${key1}, nothing matches restore keys deps-; starting empty`,
        ),
        JSON.stringify(logged),
      );
      assert.ok(logged.some((m) => m.startsWith(`hashFiles("missing-*.txt"): no file matches`)));
      const second = await result();
      assert.deepEqual(second.out, { hit: "exact", key: key1, restored: null, before: key1 });
      await Deno.writeTextFile(`${dir}/deps.lock`, "v2\n");
      const key2 = `deps-${await lockHash("v2\n")}`;
      const third = await result();
      assert.deepEqual(third.out, { hit: "restored", key: key2, restored: key1, before: key1 });
      const fourth = await result();
      assert.deepEqual(fourth.out, { hit: "exact", key: key2, restored: null, before: key2 });
      await collectCaches(
        options.driver,
        `${dir}/pipeline.ts`,
        fourth.r.stateDir,
        new Date(Date.now() + 60_000),
      );
      await cleanup(fourth.r);
    });
  }

  test(
    caps.sandboxes
      ? "sandboxes keep state, take per-call settings, run calls concurrently"
      : "sandbox() is refused clearly",
    async () => {
      const result = await run(`export default pipeline("p", async () => {
      await using box = await sandbox("box").image(IMAGE).env({ BASE: "base" }).start();
      await box.sh("echo kept > state.txt");
      const kept = await box.run("cat", "state.txt");
      const call = await box.env({ GREET: "hey" }).workDir("/tmp").sh('echo "$GREET $BASE"; pwd');
      const failed = await box.sh("exit 42").then(() => "resolved", (e) => e.result.code);
      const allowed = await box.allowFailure().sh("exit 42");
      const started = Date.now();
      await Promise.all([box.sh("sleep 1"), box.sh("sleep 1"), box.sh("sleep 1")]);
      const concurrentMs = Date.now() - started;
      const timedOut = await box.timeout("300ms").sh("sleep 20").then(() => "resolved", (e) => e.result.status);
      out("R", { kept: kept.stdout, call: call.stdout, failed, allowed: allowed.code, concurrentMs, timedOut });
    });`);
      if (!caps.sandboxes) {
        assert.equal(result.outcome.exitCode, 1);
        assert.match(result.outcome.error ?? "", /sandboxes/);
        await cleanup(result);
        return;
      }
      assert.equal(result.outcome.exitCode, 0, result.stderr);
      const r = loggedJson<Record<string, unknown>>(result.logs, "R");
      assert.equal(r.kept, "kept\n");
      assert.match(String(r.call), /hey base\n\/tmp\n/);
      assert.equal(r.failed, 42);
      assert.equal(r.allowed, 42);
      assert.ok(Number(r.concurrentMs) < 2500, `three 1 s calls took ${r.concurrentMs} ms`);
      assert.equal(r.timedOut, "timeout");
      assert.ok(result.events.some((event) => event.type === "sandbox.end"));
      await cleanup(result);
    },
  );

  if (caps.sandboxes) {
    test("an idle open sandbox holds no --parallelism slot; its calls do", async () => {
      const result = await run(
        `export default pipeline("p", async () => {
        await using box = await sandbox("idle").image(IMAGE).start();
        await t("while-open").sh("echo ran");
        await Promise.all([box.sh("sleep 0.3"), t("queued").sh("sleep 0.3")]);
      });`,
        { parallelism: 1, timeoutMs: 30_000 },
      );
      assert.equal(result.outcome.exitCode, 0, result.stderr);
      assert.equal(maxConcurrent(result.events), 1);
      await cleanup(result);
    });

    test("the runner closes a sandbox the pipeline left open", async () => {
      const result = await run(`export default pipeline("p", async () => {
        const box = await sandbox("left-open").image(IMAGE).start();
        await box.sh("true");
      });`);
      assert.equal(result.outcome.exitCode, 0, result.stderr);
      assert.ok(
        result.events.some((event) => event.type === "sandbox.end"),
        "the sandbox was closed",
      );
      await cleanup(result);
    });
  }

  test("secrets are masked in results, onOutput, events and logs, including split and encoded forms", async () => {
    const value = "s3cr3t-Value-42";
    const multi = "first-line-secret\nsecond-line-secret";
    const b64 = btoa(value);
    const result = await run(
      `export default pipeline("p", async () => {
      const chunks: string[] = [];
      const r = await t("leak").env({ TOKEN: secret("TOKEN"), MULTI: secret("MULTI") })
        .onOutput((_stream, chunk) => chunks.push(chunk))
        .sh('echo "plain=$TOKEN"; printf "split=%s" "$(echo "$TOKEN" | cut -c1-6)"; sleep 0.3; echo "$TOKEN" | cut -c7-; echo "b64=${b64}"; echo "$MULTI"; echo "$TOKEN" >&2');
      const unknown = await t("unknown").env({ X: secret("NOT_GRANTED") }).sh("true").then(() => "ran", (e) => e.message);
      out("R", { stdout: r.stdout, stderr: r.stderr, chunks: chunks.join(""), unknown });
    });`,
      { secrets: { TOKEN: value, MULTI: multi } },
    );
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    const everything = [
      result.stdout,
      result.stderr,
      JSON.stringify(result.events),
      ...(await readTree(result.outcome.logDir)),
    ].join("\n");
    for (const leaked of [value, b64, "first-line-secret", "second-line-secret"]) {
      assert.ok(!everything.includes(leaked), `"${leaked}" leaked`);
    }
    const r = loggedJson<{ stdout: string; stderr: string; chunks: string; unknown: string }>(
      result.logs,
      "R",
    );
    assert.match(r.stdout, /plain=\*\*\*/);
    assert.match(r.stdout, /split=\*\*\*/);
    assert.match(r.stdout, /b64=\*\*\*/);
    assert.ok(!r.chunks.includes(value) && !r.chunks.includes("s3cr3t"), "onOutput saw the secret");
    assert.match(r.unknown, /--secret NOT_GRANTED/);
    await cleanup(result);
  });

  test("--parallelism caps running tasks; without it tasks run together", async () => {
    const body = `export default pipeline("p", async () => {
      await Promise.all([1, 2, 3, 4].map((i) => t("par").sh("sleep 0.6")));
    });`;
    const capped = await run(body, { parallelism: 2 });
    assert.equal(capped.outcome.exitCode, 0, capped.stderr);
    assert.equal(maxConcurrent(capped.events), 2);
    await cleanup(capped);
    const free = await run(body);
    assert.equal(free.outcome.exitCode, 0, free.stderr);
    assert.equal(maxConcurrent(free.events), 4);
    const ids = free.events.flatMap((event) => event.type === "task.end" ? [event.id] : []);
    assert.equal(new Set(ids).size, 4, "tasks with the same name get distinct IDs");
    await cleanup(free);
  });

  test("exit codes: failing task 1 (with its last lines), throw 1, load error 2, --timeout 124", async () => {
    const failing = await run(`export default pipeline("p", async () => {
      await t("breaks").sh("echo line-before-failure; exit 7");
    });`);
    assert.equal(failing.outcome.exitCode, 1);
    assert.match(failing.stderr, /task "breaks" failed with exit code 7/);
    assert.match(failing.stderr, /line-before-failure/);
    assert.doesNotMatch(failing.stderr, /at file:\/\//, "no stack trace");
    await cleanup(failing);

    const throwing = await run(
      `export default pipeline("p", async () => { throw new Error("boom"); });`,
    );
    assert.equal(throwing.outcome.exitCode, 1);
    assert.match(throwing.outcome.error ?? "", /boom/);
    await cleanup(throwing);

    const broken = await run(`export default pipeline("p", async () => { const x = ; });`);
    assert.equal(broken.outcome.exitCode, 2);
    await cleanup(broken);

    const noExport = await run(`export const notDefault = 1;`);
    assert.equal(noExport.outcome.exitCode, 2);
    assert.match(noExport.outcome.error ?? "", /default export/);
    await cleanup(noExport);

    const plain = await run(
      `export default async (ctx: { args: readonly string[] }) => { out("A", ctx.args); };`,
      {
        args: ["x", "y"],
      },
    );
    assert.equal(plain.outcome.exitCode, 0);
    assert.deepEqual(loggedJson<string[]>(plain.logs, "A"), ["x", "y"]);
    await cleanup(plain);

    const started = performance.now();
    const slow = await run(
      `export default pipeline("p", async () => { await t("forever").sh("sleep 30"); });`,
      {
        timeoutMs: 700,
      },
    );
    assert.equal(slow.outcome.exitCode, 124);
    assert.equal(endsByName(slow.events).get("forever")?.status, "cancelled");
    assert.ok(performance.now() - started < 15_000);
    await cleanup(slow);
  });

  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    test(`${signal} cancels running tasks, removes resources and exits ${code}`, async () => {
      const result = await run(
        `export default pipeline("p", async (ctx) => {
        ctx.signal.addEventListener("abort", () => console.log("ABORTED " + ctx.signal.reason));
        const v = await volume("v");
        await t("long").mount(v, "v").sh("sleep 30");
      });`,
        {
          onEvent: (event, runner) => {
            if (event.type === "task.start") setTimeout(() => runner.interrupt(signal), 300);
          },
        },
      );
      assert.equal(result.outcome.exitCode, code, result.outcome.error ?? result.stderr);
      assert.equal(endsByName(result.events).get("long")?.status, "cancelled");
      assert.ok(
        result.logs.includes(`ABORTED interrupted by ${signal}`),
        `ctx.signal aborted: ${result.logs.join(" | ")}`,
      );
      await cleanup(result);
    });
  }

  test("a second SIGINT skips the grace period but still removes resources", async () => {
    // With a 60 s grace period and a task that ignores SIGTERM, only the second SIGINT
    // can end the run long before a minute has passed.
    let secondAt = 0;
    let fired = false;
    const result = await run(
      `export default pipeline("p", async () => {
      const v = await volume("v");
      await t("stubborn").mount(v, "v").sh("trap '' TERM; echo running; sleep 120");
    });`,
      {
        graceMs: 60_000,
        onEvent: (event, runner) => {
          // Once the task runs (a VM driver boots first, and a stop then abandons the boot).
          if (event.type !== "task.output" || fired) return;
          fired = true;
          setTimeout(() => runner.interrupt("SIGINT"), 300);
          setTimeout(() => {
            secondAt = performance.now();
            runner.interrupt("SIGINT");
          }, 900);
        },
      },
    );
    assert.equal(result.outcome.exitCode, 130);
    assert.ok(secondAt > 0, "the task never ran");
    const afterSecond = performance.now() - secondAt;
    assert.ok(afterSecond < 30_000, `the run ended ${afterSecond} ms after the second SIGINT`);
    await cleanup(result);
  });

  test("output is bounded: head and tail kept, truncation marked", async () => {
    const result = await run(`export default pipeline("p", async () => {
      const r = await t("loud").sh("echo FIRST; head -c 3000000 /dev/zero | tr '\\\\0' a; echo; echo LAST");
      out("R", { length: r.stdout.length, start: r.stdout.slice(0, 6), end: r.stdout.slice(-5), marked: r.stdout.includes("truncated") });
    });`);
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    const r = loggedJson<{ length: number; start: string; end: string; marked: boolean }>(
      result.logs,
      "R",
    );
    assert.ok(r.length < 1_200_000, `kept ${r.length} characters`);
    assert.equal(r.start, "FIRST\n");
    assert.equal(r.end, "LAST\n");
    assert.equal(r.marked, true);
    await cleanup(result);
  });

  for (const capability of ["user", "privileged", "limits", "stdin"] as const) {
    const usage = {
      user: options.numericUser ? `.user("65534")` : `.user("nobody")`,
      privileged: `.privileged()`,
      limits: `.limits({ cpu: 0.5, memory: "64Mi" })`,
      stdin: `.stdin("hello stdin")`,
    }[capability];
    const command = capability === "stdin" ? `run("cat")` : `sh("echo ok")`;
    test(
      caps[capability] ? `${capability} is honoured` : `${capability} is refused clearly`,
      async () => {
        const result = await run(`export default pipeline("p", async () => {
        const r = await t("cap")${usage}.${command}.then((r) => r, (e) => e.result);
        out("R", r);
      });`);
        assert.equal(result.outcome.exitCode, 0, result.stderr);
        const r = loggedJson<{ status: string; stdout: string; error?: string }>(result.logs, "R");
        if (caps[capability]) {
          assert.equal(r.status, "success", r.error);
          if (capability === "stdin") assert.equal(r.stdout, "hello stdin");
        } else {
          assert.equal(r.status, "error");
          assert.match(String(r.error), new RegExp(capability));
        }
        await cleanup(result);
      },
    );
  }
}

function maxConcurrent(events: readonly RunEvent[]): number {
  let running = 0;
  let max = 0;
  for (const event of events) {
    if (event.type === "task.start") max = Math.max(max, ++running);
    if (event.type === "task.end") running--;
  }
  return max;
}

async function readTree(dir: string): Promise<string[]> {
  const texts: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) texts.push(...await readTree(path));
    else if (entry.isFile) texts.push(await Deno.readTextFile(path));
  }
  return texts;
}
