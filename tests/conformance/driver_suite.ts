/**
 * The driver conformance suite: one set of `Deno.test` cases, parameterized by
 * driver, covering every driver-level behaviour of the contract. Each driver's test
 * file calls {@link defineDriverConformance}. Checks for a capability run only when
 * the driver claims it; for an unclaimed capability the suite checks that using it
 * is an {@link UnsupportedError} naming it.
 *
 * Commands are `sh -c` scripts that work with busybox and with a host's /bin/sh.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type Driver,
  type DriverContext,
  DriverError,
  type DriverMaintenance,
  type ExitStatus,
  type Mount,
  type OutputSink,
  type TaskHandle,
  type TaskSpec,
  UnsupportedError,
  type VolumeHandle,
} from "../../drivers/contract.ts";
import { createTarStream, listTar, tarFromFiles } from "../../drivers/archive/mod.ts";
import { createTestContext, type TestContext } from "./context.ts";

/** How to run the suite against one driver. */
export interface ConformanceOptions {
  /** The driver's name, used to prefix test names. */
  readonly name: string;
  /** Creates a driver bound to `ctx`. */
  readonly createDriver: (ctx: DriverContext) => Promise<Driver>;
  /** The image tasks use (drivers that honour images); commands must work with busybox. */
  readonly image?: string;
  /** Maintenance access, to check `gc` sees caches and to remove them afterwards. */
  readonly maintenance?: (ctx: DriverContext) => Promise<DriverMaintenance>;
  /**
   * Whether absolute mount paths are honoured (containers: true). When false the
   * suite checks they are refused with a `DriverError` of code `invalid`.
   */
  readonly absoluteMounts?: boolean;
  /**
   * The command runs as PID 1 of its own PID namespace (a container without an init),
   * so a signal it sends itself has no effect: the suite then checks exactly that, and
   * checks signal deaths through `stop()` only.
   */
  readonly tasksArePid1?: boolean;
  /**
   * Limits size a whole machine (Fly): a CPU limit rounds up to whole CPUs, so the suite checks
   * the task's CPU quota is at least what it asked for (`max` or a multiple of the period)
   * instead of exactly 0.5 CPU.
   */
  readonly wholeCpus?: boolean;
  /**
   * Environment variable names a task may see besides its own env (the driver's or
   * image's defaults and what `sh` adds itself).
   */
  readonly inheritedEnv?: readonly string[];
  /**
   * Whether `user` takes names (default true). A driver that takes numeric uids only (k8s: the
   * pod's securityContext has no name lookup) is checked with a uid, and a name must be refused
   * with a `DriverError` of code `invalid`.
   */
  readonly userNames?: boolean;
  /**
   * Deno's op and resource sanitizers (default on). Off for a driver whose machine is shared
   * by every test of the file and so keeps a connection and its reads open across tests.
   */
  readonly sanitize?: boolean;
}

const DEFAULT_INHERITED = ["PATH", "HOME", "HOSTNAME", "PWD", "OLDPWD", "SHLVL", "TERM", "_"];
const decoder = new TextDecoder();

/** The output of one task, collected per stream and in arrival order. */
export class OutputCollector {
  /** Chunks in arrival order. */
  readonly chunks: { stream: "stdout" | "stderr"; text: string; at: number }[] = [];
  /** The sink to give the driver. */
  readonly sink: OutputSink = (stream, chunk) => {
    this.chunks.push({ stream, text: decoder.decode(chunk), at: Date.now() });
  };
  /** Everything written to stdout. */
  get stdout(): string {
    return this.chunks.filter((c) => c.stream === "stdout").map((c) => c.text).join("");
  }
  /** Everything written to stderr. */
  get stderr(): string {
    return this.chunks.filter((c) => c.stream === "stderr").map((c) => c.text).join("");
  }
  /** Resolves once `text` appeared on `stream` (rejects after `timeoutMs`). */
  async waitFor(stream: "stdout" | "stderr", text: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(stream === "stdout" ? this.stdout : this.stderr).includes(text)) {
      if (Date.now() > deadline) {
        throw new Error(`"${text}" did not appear on ${stream} within ${timeoutMs} ms`);
      }
      await delay(20);
    }
  }
}

/** Registers the conformance tests for one driver. */
export function defineDriverConformance(options: ConformanceOptions): void {
  const inherited = new Set(options.inheritedEnv ?? DEFAULT_INHERITED);
  let counter = 0;

  const spec = (command: string[], extra: Partial<TaskSpec> = {}): TaskSpec => {
    const id = `t${++counter}-${crypto.randomUUID().slice(0, 6)}`;
    return {
      id,
      name: extra.name ?? id,
      command,
      env: {},
      mounts: [],
      ...(options.image === undefined ? {} : { image: options.image }),
      ...extra,
    };
  };
  const sh = (script: string, extra: Partial<TaskSpec> = {}): TaskSpec =>
    spec(["sh", "-c", script], extra);

  const run = async (
    driver: Driver,
    task: TaskSpec,
  ): Promise<{ status: ExitStatus; stdout: string; stderr: string; handle: TaskHandle }> => {
    const output = new OutputCollector();
    const handle = await driver.startTask(task, output.sink);
    const status = await handle.wait();
    return { status, stdout: output.stdout, stderr: output.stderr, handle };
  };

  /** Runs `body` with a fresh driver, then closes it and checks nothing is left recorded. */
  const withDriver = async (
    body: (driver: Driver, ctx: TestContext) => Promise<void>,
    ctx?: TestContext,
  ): Promise<void> => {
    const context = ctx ?? await createTestContext();
    const driver = await options.createDriver(context);
    try {
      await body(driver, context);
    } finally {
      const report = await driver.close();
      try {
        assert.deepEqual(report.failed, [], "close() could not remove everything");
        assert.deepEqual(
          [...context.live.values()].filter((resource) => resource.kind !== "cache"),
          [],
          "resources still recorded after close()",
        );
        assert.deepEqual(context.unmatchedForgets, [], "forgot resources it never recorded");
      } finally {
        if (ctx === undefined) await context.dispose();
      }
    }
  };

  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({
      name: `${options.name}: ${name}`,
      fn,
      ...(options.sanitize === false ? { sanitizeOps: false, sanitizeResources: false } : {}),
    });

  let claimed: Driver["capabilities"] | undefined;
  const capabilities = async (): Promise<Driver["capabilities"]> => {
    if (claimed === undefined) {
      const context = await createTestContext();
      try {
        const driver = await options.createDriver(context);
        claimed = driver.capabilities;
        await driver.close();
      } finally {
        await context.dispose();
      }
    }
    return claimed;
  };

  const readVolumeFile = async (
    driver: Driver,
    volume: VolumeHandle,
    path: string,
  ): Promise<Uint8Array | undefined> => {
    const entries = await listTar(await driver.getArchive(volume, [path]));
    return entries.find((entry) => entry.path === path)?.content;
  };

  // --- exit codes -------------------------------------------------------------------

  test("exit code 0 with output", async () => {
    await withDriver(async (driver) => {
      const result = await run(driver, sh("echo hello"));
      assert.equal(result.status.code, 0);
      assert.equal(result.stdout, "hello\n");
      assert.equal(result.stderr, "");
    });
  });

  test("non-zero exit code is reported, not thrown", async () => {
    await withDriver(async (driver) => {
      const result = await run(driver, sh("exit 3"));
      assert.equal(result.status.code, 3);
      assert.equal(result.status.signal, undefined);
      assert.equal((await result.handle.wait()).code, 3, "wait() is repeatable");
    });
  });

  test("a process killed by a signal reports 128+N", async () => {
    await withDriver(async (driver) => {
      if (options.tasksArePid1) {
        const ignored = await run(driver, sh("kill -9 $$; echo survived"));
        assert.deepEqual([ignored.status.code, ignored.stdout], [0, "survived\n"]);
      } else {
        const killed = await run(driver, sh("kill -9 $$"));
        assert.deepEqual([killed.status.code, killed.status.signal], [137, 9]);
        const terminated = await run(driver, sh("kill -15 $$; sleep 5"));
        assert.deepEqual([terminated.status.code, terminated.status.signal], [143, 15]);
      }
      const output = new OutputCollector();
      const handle = await driver.startTask(sh("echo up; sleep 30"), output.sink);
      await output.waitFor("stdout", "up");
      await handle.stop(0);
      const stopped = await handle.wait();
      assert.equal(stopped.code, 137);
      assert.ok(stopped.signal === undefined || stopped.signal === 9, `signal ${stopped.signal}`);
    });
  });

  test("command not found is a DriverError with code command_not_found", async () => {
    await withDriver(async (driver) => {
      await assert.rejects(
        () => run(driver, spec(["pocketci-no-such-command-xyz"])),
        (error: unknown) => error instanceof DriverError && error.code === "command_not_found",
      );
      await assert.rejects(
        () => run(driver, spec([])),
        (error: unknown) => error instanceof DriverError && error.code === "invalid",
      );
    });
  });

  // --- output -----------------------------------------------------------------------

  test("stdout and stderr arrive separately and in order", async () => {
    const caps = await capabilities();
    await withDriver(async (driver) => {
      const result = await run(
        driver,
        sh("echo out1; echo err1 >&2; echo out2; echo err2 >&2; printf 'no newline'"),
      );
      assert.equal(result.status.code, 0);
      if (caps.separateStderr) {
        assert.equal(result.stdout, "out1\nout2\nno newline");
        assert.equal(result.stderr, "err1\nerr2\n");
      } else {
        assert.match(result.stdout + result.stderr, /out1[\s\S]*out2/);
      }
    });
  });

  test("output streams live while the task runs", async () => {
    const caps = await capabilities();
    await withDriver(async (driver) => {
      const output = new OutputCollector();
      const handle = await driver.startTask(sh("echo first; sleep 2; echo second"), output.sink);
      let exited = false;
      const waiting = handle.wait().then((status) => {
        exited = true;
        return status;
      });
      if (caps.liveStreaming) {
        await output.waitFor("stdout", "first", 5000);
        assert.equal(exited, false, "first line arrived only after exit");
        assert.equal(output.stdout, "first\n");
      }
      assert.equal((await waiting).code, 0);
      assert.equal(output.stdout, "first\nsecond\n");
    });
  });

  test("large binary output is delivered intact", async () => {
    await withDriver(async (driver) => {
      const output: Uint8Array[] = [];
      const decoder = new TextDecoder();
      const handle = await driver.startTask(
        // About 1.3 MB: many reads, so a driver that reuses its read buffer is checked too.
        sh(
          "i=0; while [ $i -lt 2000 ]; do echo line-$i-abcdefghijklmnopqrstuvwxyz; i=$((i+1)); done; seq 1 200000",
        ),
        (stream, chunk) => {
          // Chunks are only valid during the call (OutputSink): kept ones are copied.
          if (stream === "stdout") output.push(chunk.slice());
        },
      );
      assert.equal((await handle.wait()).code, 0);
      const text = output.map((chunk) => decoder.decode(chunk, { stream: true })).join("");
      const lines = text.trimEnd().split("\n");
      assert.equal(lines.length, 202000);
      assert.equal(lines[1999], "line-1999-abcdefghijklmnopqrstuvwxyz");
      const wrong = lines.slice(2000).findIndex((line, i) => line !== String(i + 1));
      assert.equal(wrong, -1, `line ${wrong + 2001} is ${JSON.stringify(lines[wrong + 2000])}`);
    });
  });

  // --- stdin and env ------------------------------------------------------------------

  test("stdin is fed to the task and then closed", async () => {
    const caps = await capabilities();
    await withDriver(async (driver) => {
      const stdin = new TextEncoder().encode("hello\nworld");
      if (!caps.stdin) {
        await assert.rejects(() => run(driver, sh("cat", { stdin })), isUnsupported("stdin"));
        return;
      }
      const result = await run(driver, sh("cat; echo; echo done", { stdin }));
      assert.equal(result.stdout, "hello\nworld\ndone\n");
      const empty = await run(driver, sh("cat; echo eof"));
      assert.equal(empty.stdout, "eof\n", "without stdin, reading it sees end of file");
    });
  });

  test("the task gets its env and nothing else from the host", async () => {
    const marker = "POCKETCI_CONFORMANCE_HOST_ONLY";
    Deno.env.set(marker, "leaked");
    try {
      await withDriver(async (driver) => {
        const result = await run(
          driver,
          spec(["env"], { env: { HELLO: "WORLD", SPACED: "a b  c", EMPTY: "" } }),
        );
        assert.equal(result.status.code, 0);
        const lines = result.stdout.split("\n").filter((line) => line !== "");
        assert.ok(lines.includes("HELLO=WORLD"), result.stdout);
        assert.ok(lines.includes("SPACED=a b  c"), result.stdout);
        assert.ok(lines.includes("EMPTY="), result.stdout);
        assert.ok(!result.stdout.includes(marker), "a host variable leaked into the task");
        const names = lines.map((line) => line.slice(0, line.indexOf("=")));
        const unexpected = names.filter((name) =>
          !inherited.has(name) && !["HELLO", "SPACED", "EMPTY"].includes(name)
        );
        assert.deepEqual(unexpected, [], "unexpected variables in the task's environment");
      });
    } finally {
      Deno.env.delete(marker);
    }
  });

  // --- working directory and mounts ---------------------------------------------------

  test("the default working directory is fresh and writable per task", async () => {
    await withDriver(async (driver) => {
      const script = '[ -z "$(ls -A)" ] && echo empty; touch marker; ls -A';
      const first = await run(driver, sh(script));
      assert.equal(first.stdout, "empty\nmarker\n", first.stderr);
      const second = await run(driver, sh(script));
      assert.equal(second.stdout, "empty\nmarker\n", "the second task saw the first one's files");
    });
  });

  test("relative mounts (nested too) share a volume between tasks", async () => {
    await withDriver(async (driver) => {
      const volume = await driver.createVolume({ name: "shared", kind: "volume" });
      const again = await driver.createVolume({ name: "shared", kind: "volume" });
      assert.deepEqual(again, volume, "createVolume is idempotent by name");
      const writer = await run(
        driver,
        sh("echo world > data/sub/hello && ls data/sub", {
          mounts: [{ volume, path: "data/sub" }],
        }),
      );
      assert.equal(writer.status.code, 0, writer.stderr);
      const reader = await run(
        driver,
        sh("cat other/hello", { mounts: [{ volume, path: "other" }] }),
      );
      assert.equal(reader.stdout, "world\n");
      assert.deepEqual(decoder.decode(await readVolumeFile(driver, volume, "hello")), "world\n");
    });
  });

  test('mount "src" with workDir "src" runs inside the volume (both relative to the default directory)', async () => {
    await withDriver(async (driver) => {
      const volume = await driver.createVolume({ name: "src", kind: "volume" });
      await driver.putArchive(volume, tarFromFiles({ "package.json": "{}", "lib/a.txt": "a" }));
      const inside = await run(
        driver,
        sh("ls -A; cat lib/a.txt; echo made > made.txt", {
          workDir: "src",
          mounts: [{ volume, path: "src" }],
        }),
      );
      assert.equal(inside.status.code, 0, inside.stderr);
      assert.equal(inside.stdout, "lib\npackage.json\na", "the task did not see the volume at .");
      assert.equal(decoder.decode(await readVolumeFile(driver, volume, "made.txt")), "made\n");
      // A missing workDir inside a mount is created in the volume.
      const deeper = await run(
        driver,
        sh("pwd; echo deep > f", { workDir: "src/new/deep", mounts: [{ volume, path: "src" }] }),
      );
      assert.equal(deeper.status.code, 0, deeper.stderr);
      assert.match(deeper.stdout, /\/new\/deep\n$/);
      assert.equal(decoder.decode(await readVolumeFile(driver, volume, "new/deep/f")), "deep\n");
    });
  });

  test("a relative workDir does not move relative mounts: both hang off the default directory", async () => {
    await withDriver(async (driver) => {
      const volume = await driver.createVolume({ name: "wd", kind: "volume" });
      const result = await run(
        driver,
        sh("pwd; echo in-wd > ../../m/file; test -e m || echo no-m-in-workdir; ls -A ../..", {
          workDir: "work/dir",
          mounts: [{ volume, path: "m" }],
        }),
      );
      assert.equal(result.status.code, 0, result.stderr);
      assert.match(result.stdout, /\/work\/dir\nno-m-in-workdir\nm\nwork\n$/);
      assert.equal(decoder.decode(await readVolumeFile(driver, volume, "file")), "in-wd\n");
    });
  });

  test("a relative workDir without mounts is created under the default directory", async () => {
    await withDriver(async (driver) => {
      const script = "pwd; touch here; ls -A ../..; ls -A";
      const first = await run(driver, sh(script, { workDir: "a/b" }));
      assert.equal(first.status.code, 0, first.stderr);
      assert.match(first.stdout, /\/a\/b\na\nhere\n$/);
      const second = await run(driver, sh(script, { workDir: "a/b" }));
      assert.match(second.stdout, /\/a\/b\na\nhere\n$/, "the workDir was not fresh per task");
    });
  });

  test("absolute mount paths are honoured or clearly refused", async () => {
    await withDriver(async (driver) => {
      const volume = await driver.createVolume({ name: "abs", kind: "volume" });
      const path = `/pocketci-abs-${crypto.randomUUID().slice(0, 8)}`;
      const mounts: Mount[] = [{ volume, path }];
      if (options.absoluteMounts) {
        assert.equal((await run(driver, sh(`echo abs > ${path}/f`, { mounts }))).status.code, 0);
        assert.equal((await run(driver, sh(`cat ${path}/f`, { mounts }))).stdout, "abs\n");
      } else {
        await assert.rejects(
          () => run(driver, sh("true", { mounts })),
          (error: unknown) =>
            error instanceof DriverError && error.code === "invalid" &&
            error.message.includes(path),
        );
      }
    });
  });

  // --- archives -----------------------------------------------------------------------

  test("putArchive and getArchive round-trip binary files and paths", async () => {
    await withDriver(async (driver) => {
      const volume = await driver.createVolume({ name: "files", kind: "volume" });
      const binary = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7 + (i >> 8)) & 0xff);
      await driver.putArchive(
        volume,
        tarFromFiles({
          "a/b/c.bin": { content: binary },
          "a/run.sh": { content: "#!/bin/sh\necho ran\n", mode: 0o755 },
          "top.txt": "top",
        }),
        "sub",
      );
      const task = await run(
        driver,
        sh(
          "cat m/sub/top.txt; ./m/sub/a/run.sh; wc -c < m/sub/a/b/c.bin; printf '\\000\\001\\377' > m/written.bin",
          {
            mounts: [{ volume, path: "m" }],
          },
        ),
      );
      assert.equal(task.status.code, 0, task.stderr);
      assert.match(task.stdout, /^topran\n\s*70000\n$/);
      const selected = await listTar(
        await driver.getArchive(volume, ["sub/a/b/c.bin", "written.bin"]),
      );
      const byPath = new Map(selected.map((entry) => [entry.path.replace(/^\.\//, ""), entry]));
      assert.deepEqual(byPath.get("sub/a/b/c.bin")?.content, binary);
      assert.deepEqual(byPath.get("written.bin")?.content, new Uint8Array([0, 1, 255]));
      const directory = await listTar(await driver.getArchive(volume, ["sub/a"]));
      const names = directory.map((entry) => entry.path.replace(/^\.\//, "").replace(/\/$/, ""));
      assert.ok(names.includes("sub/a/b/c.bin") && names.includes("sub/a/run.sh"), names.join());
      const all = await listTar(await driver.getArchive(volume));
      const allNames = all.map((entry) => entry.path.replace(/^\.\//, "").replace(/\/$/, ""));
      assert.ok(
        allNames.includes("sub/top.txt") && allNames.includes("written.bin"),
        allNames.join(),
      );
      await assert.rejects(
        () => driver.getArchive(volume, ["no/such/file"]),
        (error: unknown) => error instanceof DriverError && error.code === "not_found",
      );
    });
  });

  test("putArchive refuses entries escaping the volume; removeVolume empties it", async () => {
    await withDriver(async (driver) => {
      const volume = await driver.createVolume({ name: "guarded", kind: "volume" });
      const body = new TextEncoder().encode("x");
      const tarOf = (path: string) =>
        createTarStream([{ path, type: "file", mode: 0o644, size: 1, mtime: 0, body }]);
      for (const path of ["../escape.txt", "a/../../escape.txt"]) {
        await assert.rejects(
          () => driver.putArchive(volume, tarOf(path)),
          DriverError,
          `putArchive accepted ${path}`,
        );
      }
      // An absolute entry is either refused or kept inside the volume (leading / dropped).
      const absolute = await driver.putArchive(volume, tarOf("/abs-escape.txt")).then(
        () => true,
        (error: unknown) => {
          assert.ok(error instanceof DriverError, String(error));
          return false;
        },
      );
      if (absolute) {
        assert.equal(decoder.decode(await readVolumeFile(driver, volume, "abs-escape.txt")), "x");
      }
      await driver.putArchive(volume, tarFromFiles({ "keep.txt": "kept" }));
      assert.equal(decoder.decode(await readVolumeFile(driver, volume, "keep.txt")), "kept");
      await driver.removeVolume(volume);
      const fresh = await driver.createVolume({ name: "guarded", kind: "volume" });
      const entries = await listTar(await driver.getArchive(fresh));
      assert.deepEqual(entries.filter((entry) => entry.path.replace(/^\.\/?/, "") !== ""), []);
    });
  });

  // --- caches -------------------------------------------------------------------------

  test("caches persist across driver instances of a namespace; volumes do not", async () => {
    const caps = await capabilities();
    const first = await createTestContext();
    const second = await createTestContext({
      namespace: first.namespace,
      stateDir: first.stateDir,
    });
    const cacheName = `cache-${crypto.randomUUID().slice(0, 6)}`;
    let cacheId = "";
    try {
      if (!caps.caches) {
        await withDriver(async (driver) => {
          await assert.rejects(
            () => driver.createVolume({ name: cacheName, kind: "cache" }),
            isUnsupported("caches"),
          );
        }, first);
        return;
      }
      await withDriver(async (driver) => {
        const cache = await driver.createVolume({ name: cacheName, kind: "cache" });
        const volume = await driver.createVolume({ name: "run-only", kind: "volume" });
        const result = await run(
          driver,
          sh("echo kept > c/f; echo gone > v/f", {
            mounts: [{ volume: cache, path: "c" }, { volume, path: "v" }],
          }),
        );
        assert.equal(result.status.code, 0, result.stderr);
        await driver.removeVolume(cache);
      }, first);
      await withDriver(async (driver) => {
        const cache = await driver.createVolume({ name: cacheName, kind: "cache" });
        const volume = await driver.createVolume({ name: "run-only", kind: "volume" });
        const result = await run(
          driver,
          sh("cat c/f; ls -A v", { mounts: [{ volume: cache, path: "c" }, { volume, path: "v" }] }),
        );
        assert.equal(result.stdout, "kept\n");
        cacheId = cache.id;
      }, second);
      if (options.maintenance !== undefined) {
        const maintenance = await options.maintenance(second);
        const listed = (await maintenance.listResources()).filter((r) => r.kind === "cache");
        const mine = listed.find((r) => r.id === cacheId);
        assert.ok(mine !== undefined, `gc does not list the cache: ${JSON.stringify(listed)}`);
        assert.ok(mine.createdAt !== undefined && !Number.isNaN(Date.parse(mine.createdAt)));
        await maintenance.removeResource(mine);
        const after = await maintenance.listResources();
        assert.ok(!after.some((r) => r.id === cacheId), "removeResource left the cache");
      }
    } finally {
      await first.dispose();
      await second.dispose();
    }
  });

  test("keyed caches: each key is its own cache; a seed is copied in, never shared", async () => {
    const caps = await capabilities();
    if (!caps.caches) return;
    const first = await createTestContext();
    const second = await createTestContext({
      namespace: first.namespace,
      stateDir: first.stateDir,
    });
    const name = `keyed-${crypto.randomUUID().slice(0, 6)}`;
    const cat = async (driver: Driver, volume: VolumeHandle) =>
      decoder.decode(await readVolumeFile(driver, volume, "f"));
    try {
      await withDriver(async (driver) => {
        const v1 = await driver.createVolume({ name, kind: "cache", key: "deps-v1" });
        assert.equal(v1.opened, "created");
        assert.equal(v1.key, "deps-v1");
        const wrote = await run(
          driver,
          sh("echo one > c/f", { mounts: [{ volume: v1, path: "c" }] }),
        );
        assert.equal(wrote.status.code, 0, wrote.stderr);
        const again = await driver.createVolume({ name, kind: "cache", key: "deps-v1" });
        assert.equal(again.opened, "existing");
        assert.equal(again.id, v1.id);
        const unkeyed = await driver.createVolume({ name, kind: "cache" });
        assert.notEqual(unkeyed.id, v1.id);
        assert.equal(unkeyed.opened, "created");
        const run1 = await driver.createVolume({ name: "plain", kind: "volume" });
        await assert.rejects(
          () => driver.createVolume({ name, kind: "cache", key: "from-volume", seed: run1 }),
          (error: unknown) => error instanceof DriverError && error.code === "invalid",
        );
      }, first);
      await withDriver(async (driver) => {
        const listed = await driver.listCaches!(name);
        assert.deepEqual(listed.map((entry) => entry.handle.key ?? null).sort(), [
          "deps-v1",
          null,
        ]);
        const seed = listed.find((entry) => entry.handle.key === "deps-v1")!;
        assert.ok(seed.lastUsedAt !== undefined && !Number.isNaN(Date.parse(seed.lastUsedAt)));
        const v2 = await driver.createVolume({
          name,
          kind: "cache",
          key: "deps-v2",
          seed: seed.handle,
        });
        assert.equal(v2.opened, "seeded");
        assert.notEqual(v2.id, seed.handle.id);
        const changed = await run(
          driver,
          sh("cat c/f; echo two > c/f", { mounts: [{ volume: v2, path: "c" }] }),
        );
        assert.equal(changed.stdout, "one\n", changed.stderr);
        assert.equal(await cat(driver, v2), "two\n");
        assert.equal(await cat(driver, seed.handle), "one\n", "the restored-from cache changed");
        const existing = await driver.createVolume({
          name,
          kind: "cache",
          key: "deps-v2",
          seed: seed.handle,
        });
        assert.equal(existing.opened, "existing");
        assert.equal(await cat(driver, existing), "two\n", "an existing cache was seeded again");
      }, second);
      if (options.maintenance !== undefined) {
        // `gc --cache-max` measures caches through maintenance.
        const maintenance = await options.maintenance(second);
        const caches = (await maintenance.listResources()).filter((r) => r.kind === "cache");
        assert.equal(caches.length, 3);
        const sizes = await maintenance.cacheSizes!(caches);
        for (const cache of caches) {
          const size = sizes.get(cache.id);
          assert.ok(size !== undefined && size >= 0, `no size for ${cache.id}`);
          if (cache.detail?.name === name) {
            assert.ok(
              cache.detail.key === undefined ? size === 0 : size >= 4,
              `${cache.id}: ${size}`,
            );
          }
        }
      }
    } finally {
      if (options.maintenance !== undefined) {
        const maintenance = await options.maintenance(second);
        for (const resource of await maintenance.listResources()) {
          if (resource.kind === "cache") await maintenance.removeResource(resource);
        }
      }
      await first.dispose();
      await second.dispose();
    }
  });

  // --- stopping -----------------------------------------------------------------------

  test("stop() sends SIGTERM and lets a trapping task exit within the grace period", async () => {
    await withDriver(async (driver) => {
      const output = new OutputCollector();
      const handle = await driver.startTask(
        sh('trap "echo got-term; exit 7" TERM; echo ready; while true; do sleep 0.1; done'),
        output.sink,
      );
      await output.waitFor("stdout", "ready");
      const started = Date.now();
      await handle.stop(10_000);
      const status = await handle.wait();
      assert.equal(status.code, 7);
      assert.ok(output.stdout.includes("got-term"));
      assert.ok(Date.now() - started < 5000, "stop() waited for the whole grace period");
      await handle.stop(1000);
    });
  });

  test("stop() sends SIGKILL after the grace period", async () => {
    await withDriver(async (driver) => {
      const output = new OutputCollector();
      const handle = await driver.startTask(
        sh('trap "" TERM; echo ready; while true; do sleep 0.1; done'),
        output.sink,
      );
      await output.waitFor("stdout", "ready");
      const started = Date.now();
      await handle.stop(700);
      const elapsed = Date.now() - started;
      const status = await handle.wait();
      assert.deepEqual([status.code, status.signal], [137, 9]);
      assert.ok(elapsed >= 600, `SIGKILL came before the grace period ended (${elapsed} ms)`);
      assert.ok(elapsed < 5000, `stop() took ${elapsed} ms`);
    });
  });

  test("a second stop() with a shorter grace (a second Ctrl-C) kills at once", async () => {
    await withDriver(async (driver) => {
      const output = new OutputCollector();
      const handle = await driver.startTask(
        sh('trap "" TERM; echo ready; while true; do sleep 0.1; done'),
        output.sink,
      );
      await output.waitFor("stdout", "ready");
      const first = handle.stop(120_000);
      // Lets the SIGTERM land and the first stop settle into its grace period.
      await new Promise((resolve) => setTimeout(resolve, 300));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        handle.stop(0).then(() => "stopped"),
        new Promise((resolve) => timer = setTimeout(() => resolve("still waiting"), 20_000)),
      ]);
      clearTimeout(timer);
      assert.equal(outcome, "stopped", "the second stop() waited for the first one's grace");
      const status = await handle.wait();
      assert.deepEqual([status.code, status.signal], [137, 9]);
      await first;
    });
  });

  test("the whole process group dies: on stop() and when the main process exits", async () => {
    await withDriver(async (driver) => {
      const volume = await driver.createVolume({ name: "beat", kind: "volume" });
      const mounts = [{ volume, path: "v" }];
      const output = new OutputCollector();
      const handle = await driver.startTask(
        sh(
          "(i=0; while true; do i=$((i+1)); echo $i > v/beat; sleep 0.1; done) & echo started; wait",
          { mounts },
        ),
        output.sink,
      );
      await output.waitFor("stdout", "started");
      await delay(300);
      await handle.stop(1000);
      await handle.wait();
      const before = decoder.decode(await readVolumeFile(driver, volume, "beat"));
      await delay(500);
      const after = decoder.decode(await readVolumeFile(driver, volume, "beat"));
      assert.equal(after, before, "a child of the stopped task is still running");

      const leader = await run(driver, sh("(sleep 0.5; echo late > v/late) & exit 0", { mounts }));
      assert.equal(leader.status.code, 0);
      await delay(1200);
      await assert.rejects(
        () => driver.getArchive(volume, ["late"]),
        (error: unknown) => error instanceof DriverError && error.code === "not_found",
        "a background child outlived its task",
      );
    });
  });

  // --- attach and remove --------------------------------------------------------------

  test("attachTask replays output from the start and follows it", async () => {
    const caps = await capabilities();
    await withDriver(async (driver) => {
      const first = new OutputCollector();
      const task = sh("echo one; echo err >&2; sleep 0.6; echo two");
      const handle = await driver.startTask(task, first.sink);
      await first.waitFor("stdout", "one");
      const second = new OutputCollector();
      const attached = await driver.attachTask(task.id, second.sink);
      assert.ok(attached !== undefined);
      assert.equal(attached.id, task.id);
      assert.equal((await attached.wait()).code, 0);
      assert.equal((await handle.wait()).code, 0);
      // Without separate stderr (k8s: the pod log merges them) everything is on stdout, and
      // lines of the two pipes may interleave either way.
      const outLines = (text: string) =>
        caps.separateStderr ? text : text.split("\n").filter((l) => l !== "err").join("\n");
      assert.equal(outLines(second.stdout), "one\ntwo\n");
      assert.equal(second.stderr, caps.separateStderr ? "err\n" : "");
      if (!caps.separateStderr) assert.match(second.stdout, /^err$/m);
      const late = new OutputCollector();
      const again = await driver.attachTask(task.id, late.sink);
      assert.equal((await again!.wait()).code, 0);
      assert.equal(outLines(late.stdout), "one\ntwo\n");
      assert.equal(await driver.attachTask("no-such-task", late.sink), undefined);
      await handle.remove();
      await handle.remove();
      assert.equal(await driver.attachTask(task.id, late.sink), undefined);
    });
  });

  // --- sandboxes ----------------------------------------------------------------------

  test("sandboxes keep state, take per-call env/workDir/stdin and report exit codes", async () => {
    const caps = await capabilities();
    await withDriver(async (driver) => {
      const base = spec([], { env: { BASE: "from-sandbox" } });
      if (!caps.sandboxes) {
        await assert.rejects(() => driver.startSandbox(base), isUnsupported("sandboxes"));
        return;
      }
      const volume = await driver.createVolume({ name: "sbx", kind: "volume" });
      await driver.putArchive(volume, tarFromFiles({ "in.txt": "seeded" }));
      const box = await driver.startSandbox({ ...base, mounts: [{ volume, path: "m" }] });
      const exec = async (command: string[], extra: Record<string, unknown> = {}) => {
        const output = new OutputCollector();
        const status = await box.exec({ command, ...extra }, output.sink);
        return { status, stdout: output.stdout, stderr: output.stderr };
      };
      assert.equal((await exec(["sh", "-c", "echo x > state.txt"])).status.code, 0);
      assert.equal((await exec(["cat", "state.txt"])).stdout, "x\n");
      assert.equal((await exec(["cat", "m/in.txt"])).stdout, "seeded");
      const scoped = await exec(["sh", "-c", 'echo "$GREET $BASE"; pwd'], {
        env: { GREET: "hey" },
        workDir: "/tmp",
      });
      assert.equal(scoped.stdout, "hey from-sandbox\n/tmp\n");
      const unscoped = await exec(["sh", "-c", 'echo "[$GREET]"; ls state.txt']);
      assert.equal(
        unscoped.stdout,
        "[]\nstate.txt\n",
        "per-call settings leaked into the next call",
      );
      if (caps.stdin) {
        const fed = await exec(["cat"], { stdin: new TextEncoder().encode("piped") });
        assert.equal(fed.stdout, "piped");
      }
      const failing = await exec(["sh", "-c", "echo bad >&2; exit 42"]);
      assert.equal(failing.status.code, 42);
      assert.equal(failing.stderr, "bad\n");
      const killed = await exec(["sh", "-c", "kill -9 $$"]);
      assert.deepEqual([killed.status.code, killed.status.signal], [137, 9]);
      await assert.rejects(
        () => exec(["pocketci-no-such-command-xyz"]),
        (error: unknown) => error instanceof DriverError && error.code === "command_not_found",
      );
      await box.close();
      await box.close();
      await assert.rejects(() => exec(["true"]), DriverError);
    });
  });

  test('a sandbox with mount "src" and workDir "src" works in the volume; call workDirs are relative to the default directory', async () => {
    const caps = await capabilities();
    if (!caps.sandboxes) return;
    await withDriver(async (driver) => {
      const volume = await driver.createVolume({ name: "sbx-src", kind: "volume" });
      await driver.putArchive(volume, tarFromFiles({ "in.txt": "seeded" }));
      const box = await driver.startSandbox(
        spec([], { workDir: "src", mounts: [{ volume, path: "src" }] }),
      );
      const exec = async (command: string[], workDir?: string) => {
        const output = new OutputCollector();
        const status = await box.exec({ command, workDir }, output.sink);
        return { status, stdout: output.stdout, stderr: output.stderr };
      };
      assert.equal((await exec(["cat", "in.txt"])).stdout, "seeded");
      const made = await exec(["sh", "-c", "mkdir sub && echo s > sub/f"]);
      assert.equal(made.status.code, 0, made.stderr);
      // "src/sub", not "sub": relative to the default directory, not to the sandbox's workDir.
      const sub = await exec(["cat", "f"], "src/sub");
      assert.equal(sub.stdout, "s\n", sub.stderr);
      const top = await exec(["sh", "-c", "ls -A"], ".");
      assert.equal(
        top.stdout,
        "src\n",
        "a call's workDir \".\" is the sandbox's default directory",
      );
      await box.close();
    });
  });

  test("sandbox calls run concurrently and an aborted call is killed", async () => {
    const caps = await capabilities();
    if (!caps.sandboxes) return;
    await withDriver(async (driver) => {
      const box = await driver.startSandbox(spec([]));
      // A rendezvous, not a stopwatch: each call waits (up to 30 s) for the other's marker, so
      // both finish only if they run at the same time, however loaded the machine is.
      const outputs = [new OutputCollector(), new OutputCollector()];
      const rendezvous = (i: number) =>
        `touch here-${i}; n=0; while [ ! -e here-${1 - i} ]; do n=$((n + 1)); ` +
        `if [ "$n" -gt 300 ]; then echo "alone-${i}"; exit 3; fi; sleep 0.1; done; echo done-${i}`;
      const results = await Promise.all(
        outputs.map((output, i) => box.exec({ command: ["sh", "-c", rendezvous(i)] }, output.sink)),
      );
      assert.deepEqual(
        outputs.map((output) => output.stdout),
        ["done-0\n", "done-1\n"],
        "the two calls did not run at the same time",
      );
      assert.deepEqual(results.map((status) => status.code), [0, 0]);
      await box.exec({ command: ["rm", "-f", "here-0", "here-1"] }, () => {});

      const controller = new AbortController();
      const output = new OutputCollector();
      const abortStart = Date.now();
      const pending = box.exec(
        { command: ["sh", "-c", "echo started; sleep 30"] },
        output.sink,
        { signal: controller.signal, graceMs: 1000 },
      );
      await output.waitFor("stdout", "started");
      controller.abort();
      const status = await pending;
      assert.ok(status.code === 143 || status.code === 137, `aborted call exited ${status.code}`);
      assert.ok(Date.now() - abortStart < 5000);
      const again = new OutputCollector();
      assert.equal((await box.exec({ command: ["echo", "still-usable"] }, again.sink)).code, 0);
      assert.equal(again.stdout, "still-usable\n");
      await box.close();
    });
  });

  // --- close --------------------------------------------------------------------------

  test("close() kills running tasks and sandboxes, removes everything and reports it", async () => {
    const caps = await capabilities();
    const context = await createTestContext();
    try {
      const driver = await options.createDriver(context);
      const volume = await driver.createVolume({ name: "closing", kind: "volume" });
      const output = new OutputCollector();
      const handle = await driver.startTask(
        sh("echo up; sleep 30", { mounts: [{ volume, path: "v" }] }),
        output.sink,
      );
      await output.waitFor("stdout", "up");
      let sandboxCall: Promise<ExitStatus> | undefined;
      if (caps.sandboxes) {
        const box = await driver.startSandbox(spec([]));
        const boxOutput = new OutputCollector();
        sandboxCall = box.exec({ command: ["sh", "-c", "echo box-up; sleep 30"] }, boxOutput.sink);
        await boxOutput.waitFor("stdout", "box-up");
      }
      assert.ok(context.live.size > 0, "the driver recorded nothing");
      const started = Date.now();
      const report = await driver.close();
      assert.ok(Date.now() - started < 10_000);
      assert.deepEqual(report.failed, []);
      assert.ok(report.removed.length > 0, "close() reported nothing removed");
      const status = await handle.wait();
      assert.ok(status.code >= 128, `a task still running at close() exited ${status.code}`);
      if (sandboxCall) assert.ok((await sandboxCall).code >= 128);
      assert.deepEqual([...context.live.values()], []);
      assert.deepEqual(context.unmatchedForgets, []);
      assert.deepEqual((await driver.close()).failed, [], "a second close() failed");
      await assert.rejects(() => driver.startTask(sh("true"), () => {}), DriverError);
    } finally {
      await context.dispose();
    }
  });

  // --- capabilities -------------------------------------------------------------------

  test("capabilities it does not claim are refused with UnsupportedError", async () => {
    const caps = await capabilities();
    await withDriver(async (driver, ctx) => {
      if (caps.user && options.userNames === false) {
        const result = await run(driver, sh("id -u", { user: "65534" }));
        assert.equal(result.stdout, "65534\n");
        await assert.rejects(
          () => run(driver, sh("true", { user: "nobody" })),
          (error: unknown) => error instanceof DriverError && error.code === "invalid",
        );
      } else if (caps.user) {
        const result = await run(driver, sh("id -un", { user: "nobody" }));
        assert.equal(result.stdout, "nobody\n");
      } else {
        await assert.rejects(
          () => run(driver, sh("true", { user: "nobody" })),
          isUnsupported("user"),
        );
        if (caps.sandboxes) {
          const box = await driver.startSandbox(spec([]));
          await assert.rejects(
            () => box.exec({ command: ["true"], user: "nobody" }, () => {}),
            isUnsupported("user"),
          );
          await assert.rejects(
            () => driver.startSandbox(spec([], { user: "nobody" })),
            isUnsupported("user"),
          );
          await box.close();
        }
      }
      if (caps.privileged) {
        const result = await run(driver, sh("grep CapEff /proc/self/status", { privileged: true }));
        assert.match(result.stdout, /ffffffff\s*$/);
      } else {
        await assert.rejects(
          () => run(driver, sh("true", { privileged: true })),
          isUnsupported("privileged"),
        );
      }
      if (caps.limits) {
        const result = await run(
          driver,
          sh("head -c 300000000 /dev/zero | tr '\\0' a | sort > /dev/null", {
            limits: { memoryBytes: 32 * 1024 * 1024, cpu: 0.5 },
          }),
        );
        assert.notEqual(result.status.code, 0, "a 32 MiB limit did not stop a 300 MB sort");
        assert.equal(result.status.oomKilled, true, "the OOM kill is reported");
        const grown = await run(
          driver,
          sh(`x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo "\${#x}"`, {
            limits: { memoryBytes: 32 * 1024 * 1024 },
          }),
        );
        assert.deepEqual(
          [grown.status.code, grown.status.oomKilled],
          [137, true],
          "a shell that outgrows 32 MiB is OOM-killed",
        );
        const cpu = await run(driver, sh(READ_CPU_QUOTA, { limits: { cpu: 0.5 } }));
        const quota = options.wholeCpus ? wholeCpuQuota(cpu.stdout) : cpu.stdout;
        assert.equal(quota, "50000 100000\n", `CPU quota seen by the task: ${cpu.stderr}`);
        if (caps.sandboxes) {
          const box = await driver.startSandbox(spec([], { limits: { cpu: 0.5 } }));
          const output = new OutputCollector();
          await box.exec({ command: ["sh", "-c", READ_CPU_QUOTA] }, output.sink);
          await box.close();
          const seen = options.wholeCpus ? wholeCpuQuota(output.stdout) : output.stdout;
          assert.equal(seen, "50000 100000\n", "CPU quota seen by a sandbox call");
        }
      } else {
        await assert.rejects(
          () => run(driver, sh("true", { limits: { memoryBytes: 64 * 1024 * 1024 } })),
          isUnsupported("limits"),
        );
        await assert.rejects(
          () => run(driver, sh("true", { limits: { cpu: 1 } })),
          isUnsupported("limits"),
        );
      }
      if (!caps.images) {
        await run(driver, sh("true", { image: "busybox" }));
        await run(driver, sh("true", { image: "node:22" }));
        const imageWarnings = ctx.warnings.filter((warning) => warning.includes("image"));
        assert.equal(imageWarnings.length, 1, `expected one image warning: ${ctx.warnings}`);
      }
    });
  });
}

/**
 * Prints "quota period" of the CPU cgroup the calling process is in: its own group from
 * /proc/self/cgroup (cgroup v2 cpu.max, v1 cpu.cfs_quota_us), else the root of the
 * hierarchy mounted in a container (which is the container's own group).
 */
const READ_CPU_QUOTA = `while IFS=: read -r id ctl path; do
  case ",$ctl," in
    ,,) for f in "/sys/fs/cgroup$path/cpu.max" "/sys/fs/cgroup/unified$path/cpu.max"; do
          if [ -r "$f" ]; then cat "$f"; exit 0; fi; done ;;
    *,cpu,*) for d in "/sys/fs/cgroup/$ctl$path" "/sys/fs/cgroup/$ctl" /sys/fs/cgroup/cpu,cpuacct /sys/fs/cgroup/cpu; do
          if [ -r "$d/cpu.cfs_quota_us" ]; then
            echo "$(cat "$d/cpu.cfs_quota_us") $(cat "$d/cpu.cfs_period_us")"; exit 0; fi; done ;;
  esac
done < /proc/self/cgroup
if [ -r /sys/fs/cgroup/cpu.max ]; then cat /sys/fs/cgroup/cpu.max; exit 0; fi
echo "no cpu cgroup found" >&2; exit 1`;

/**
 * For drivers whose limits size whole machines: a quota of at least one whole CPU (or none,
 * `max`) stands for the 0.5 CPU asked; anything smaller or unreadable is returned as read.
 */
function wholeCpuQuota(text: string): string {
  const match = /^(max|\d+) (\d+)\n$/.exec(text);
  if (!match) return text;
  const whole = match[1] === "max" || Number(match[1]) >= Number(match[2]);
  return whole ? "50000 100000\n" : text;
}

function isUnsupported(capability: string): (error: unknown) => boolean {
  return (error: unknown) =>
    error instanceof UnsupportedError && error.capability === capability &&
    error.code === "unsupported";
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
