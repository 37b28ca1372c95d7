import assert from "node:assert/strict";
import { DriverError, type TaskSpec } from "../contract.ts";
import { createTarStream, listTar, tarFromFiles } from "../archive/mod.ts";
import { createTestContext } from "../../tests/conformance/context.ts";
import { OutputCollector } from "../../tests/conformance/driver_suite.ts";
import { nativeFactory, nativePermissions } from "./factory.ts";
import { NATIVE_CAPABILITIES, nativeCapabilities } from "./factory.ts";
import { detectCgroups } from "./cgroup_detect.ts";
import { permissionFlags } from "../permissions.ts";
import { ReplayBuffer } from "./replay_buffer.ts";

let counter = 0;
function sh(script: string, extra: Partial<TaskSpec> = {}): TaskSpec {
  const id = `native-${++counter}`;
  return { id, name: id, command: ["sh", "-c", script], env: {}, mounts: [], ...extra };
}

function isInvalid(fragment: string): (error: unknown) => boolean {
  return (error: unknown) =>
    error instanceof DriverError && error.code === "invalid" && error.message.includes(fragment);
}

Deno.test("native: mount paths with .., nested mounts and mounts over the workdir are refused", async () => {
  const ctx = await createTestContext();
  const driver = await nativeFactory.create({}, ctx);
  try {
    const volume = await driver.createVolume({ name: "v", kind: "volume" });
    const other = await driver.createVolume({ name: "w", kind: "volume" });
    await assert.rejects(
      () => driver.startTask(sh("true", { mounts: [{ volume, path: "../up" }] }), () => {}),
      isInvalid('"../up" must not contain ".."'),
    );
    await assert.rejects(
      () =>
        driver.startTask(
          sh("true", { mounts: [{ volume, path: "a" }, { volume: other, path: "a/b" }] }),
          () => {},
        ),
      isInvalid("cannot nest mounts"),
    );
    await assert.rejects(
      () => driver.startTask(sh("true", { mounts: [{ volume, path: "." }] }), () => {}),
      isInvalid("over the task's directory"),
    );
    await assert.rejects(
      () => driver.startTask(sh("true", { workDir: "../x" }), () => {}),
      isInvalid('must not contain ".."'),
    );
    await assert.rejects(
      () =>
        driver.startTask(
          sh("true", { mounts: [{ volume: { ...volume, id: "/etc" }, path: "etc" }] }),
          () => {},
        ),
      isInvalid("was not created by this native driver"),
    );
  } finally {
    assert.deepEqual((await driver.close()).failed, []);
    assert.deepEqual([...ctx.live.values()], []);
    await ctx.dispose();
  }
});

Deno.test("native: an absolute workDir is used as is, but never together with mounts", async () => {
  const ctx = await createTestContext();
  const driver = await nativeFactory.create({}, ctx);
  try {
    const output = new OutputCollector();
    const handle = await driver.startTask(sh("pwd", { workDir: ctx.root }), output.sink);
    assert.equal((await handle.wait()).code, 0);
    assert.equal(output.stdout, `${ctx.root}\n`);
    const volume = await driver.createVolume({ name: "v", kind: "volume" });
    await assert.rejects(
      () =>
        driver.startTask(
          sh("true", { workDir: "/tmp", mounts: [{ volume, path: "v" }] }),
          () => {},
        ),
      isInvalid('cannot combine mounts with the absolute working directory "/tmp"'),
    );
    await assert.rejects(
      () => driver.startTask(sh("true", { workDir: `${ctx.root}/missing` }), () => {}),
      isInvalid("does not exist on this host"),
    );
  } finally {
    await driver.close();
    await ctx.dispose();
  }
});

Deno.test("native: tasks lead their own process group, recorded with pgid, and get host PATH and HOME", async () => {
  const ctx = await createTestContext();
  const driver = await nativeFactory.create({}, ctx);
  try {
    const output = new OutputCollector();
    const handle = await driver.startTask(
      sh('echo "$PATH|$HOME"; sleep 0.3', { env: { EXTRA: "1" } }),
      output.sink,
    );
    await output.waitFor("stdout", "|");
    const process = [...ctx.live.values()].find((record) => record.kind === "process");
    assert.ok(process !== undefined, "the process was not recorded while running");
    const stat = await Deno.readTextFile(`/proc/${process.id}/stat`);
    const pgrp = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2];
    assert.equal(pgrp, process.id, "the task is not the leader of its own process group");
    assert.equal(process.detail?.pgid, process.id);
    assert.ok(process.detail?.startTime);
    assert.equal(output.stdout, `${Deno.env.get("PATH")}|${Deno.env.get("HOME")}\n`);
    assert.equal((await handle.wait()).code, 0);
    assert.ok(![...ctx.live.values()].some((record) => record.kind === "process"));
  } finally {
    await driver.close();
    await ctx.dispose();
  }
});

Deno.test("native: remove() takes a task's directory away at once, its contents are deleted in the background, nothing is left after close()", async () => {
  const ctx = await createTestContext();
  const driver = await nativeFactory.create({}, ctx);
  const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);
  let workspace: string | undefined;
  try {
    const handles = [];
    for (let i = 0; i < 5; i++) {
      const handle = await driver.startTask(
        sh("mkdir -p deep/er && head -c 100000 /dev/zero > deep/er/blob && echo x > top.txt"),
        () => {},
      );
      assert.equal((await handle.wait()).code, 0);
      handles.push(handle);
    }
    const dirs = ctx.recorded.filter((record) => record.detail?.role === "task").map((r) => r.id);
    workspace = ctx.recorded.find((record) => record.detail?.role === "workspace")?.id;
    assert.equal(dirs.length, 5);
    assert.ok(workspace !== undefined);
    for (const dir of dirs) assert.ok(await exists(`${dir}/deep/er/blob`), dir);
    for (const [index, handle] of handles.entries()) {
      await handle.remove();
      assert.equal(await exists(dirs[index]), false, "the task's directory is still there");
      assert.ok(![...ctx.live.values()].some((record) => record.id === dirs[index]));
    }
    await driver.close();
    assert.equal(await exists(workspace), false, "close() left the workspace behind");
    assert.deepEqual([...ctx.live.values()], []);
    assert.deepEqual(ctx.warnings, []);
  } finally {
    await driver.close();
    await ctx.dispose();
  }
});

Deno.test("native: a child that escapes the group with setsid does not hang wait()", async () => {
  const ctx = await createTestContext();
  const driver = await nativeFactory.create({}, ctx);
  try {
    const started = Date.now();
    const handle = await driver.startTask(sh("setsid sleep 6 & sleep 0.3; echo bye"), () => {});
    assert.equal((await handle.wait()).code, 0);
    assert.ok(Date.now() - started < 5000, `wait() took ${Date.now() - started} ms`);
  } finally {
    await driver.close();
    await ctx.dispose();
  }
});

Deno.test("native: starting a task ID again attaches to it and replays its output", async () => {
  const ctx = await createTestContext();
  const driver = await nativeFactory.create({}, ctx);
  try {
    const task = sh("echo once");
    const first = await driver.startTask(task, () => {});
    await first.wait();
    const output = new OutputCollector();
    const again = await driver.startTask(task, output.sink);
    assert.equal((await again.wait()).code, 0);
    assert.equal(output.stdout, "once\n");
  } finally {
    await driver.close();
    await ctx.dispose();
  }
});

Deno.test("native: putArchive refuses a path leading out of the volume through a task's symlink", async () => {
  const ctx = await createTestContext();
  const driver = await nativeFactory.create({}, ctx);
  try {
    const volume = await driver.createVolume({ name: "v", kind: "volume" });
    const handle = await driver.startTask(
      sh(`ln -s ${ctx.root} v/out`, { mounts: [{ volume, path: "v" }] }),
      () => {},
    );
    assert.equal((await handle.wait()).code, 0);
    await assert.rejects(
      () => driver.putArchive(volume, tarFromFiles({ "x.txt": "x" }), "out"),
      isInvalid("leads outside"),
    );
    await assert.rejects(
      () => driver.getArchive(volume, ["out/work"]),
      (error: unknown) => error instanceof DriverError && error.code === "invalid",
    );
    await assert.rejects(
      () =>
        driver.putArchive(
          volume,
          createTarStream([{
            path: "etc",
            type: "symlink",
            mode: 0o777,
            size: 0,
            mtime: 0,
            linkTarget: "/etc",
          }]),
        ),
      isInvalid("points outside the destination"),
    );
    const entries = await listTar(await driver.getArchive(volume, ["out"]));
    assert.deepEqual(entries.map((entry) => [entry.path, entry.type]), [["out", "symlink"]]);
  } finally {
    await driver.close();
    await ctx.dispose();
  }
});

Deno.test("native: maintenance kills a recorded group and removes only its own directories and caches", async () => {
  const ctx = await createTestContext();
  const driver = await nativeFactory.create({}, ctx);
  const maintenance = await nativeFactory.maintenance!({}, ctx);
  const outside = await Deno.makeTempDir({ prefix: "pocketci-native-outside-" });
  try {
    const output = new OutputCollector();
    const handle = await driver.startTask(sh("echo up; sleep 30 & wait"), output.sink);
    await output.waitFor("stdout", "up");
    const process = [...ctx.live.values()].find((record) => record.kind === "process")!;
    await maintenance.removeResource(process);
    assert.equal((await handle.wait()).code, 137);

    const volume = await driver.createVolume({ name: "gc-me", kind: "volume" });
    const dirRecord = [...ctx.live.values()].find((record) => record.id === volume.id)!;
    await maintenance.removeResource(dirRecord);
    assert.equal(await Deno.lstat(volume.id).then(() => true, () => false), false);
    await assert.rejects(
      () => maintenance.removeResource({ ...dirRecord, id: outside }),
      isInvalid("not inside a native driver workspace"),
    );
    assert.equal((await Deno.stat(outside)).isDirectory, true);
    await assert.rejects(
      () => maintenance.removeResource({ kind: "cache", id: outside, driver: "native" }),
      isInvalid("not a cache of this namespace"),
    );
    const cache = await driver.createVolume({ name: "odd name/with slash", kind: "cache" });
    const listed = await maintenance.listResources();
    assert.deepEqual(listed.map((record) => [record.kind, record.id, record.detail?.name]), [
      ["cache", cache.id, "odd name/with slash"],
    ]);
    assert.equal(listed[0].runId, ctx.runId);
  } finally {
    await driver.close();
    await Deno.remove(outside, { recursive: true });
    await ctx.dispose();
  }
});

Deno.test("native: maintenance never kills a live group whose identity it cannot confirm", async () => {
  const ctx = await createTestContext();
  const driver = await nativeFactory.create({}, ctx);
  const maintenance = await nativeFactory.maintenance!({}, ctx);
  try {
    const output = new OutputCollector();
    const handle = await driver.startTask(sh("echo up; sleep 30 & wait"), output.sink);
    await output.waitFor("stdout", "up");
    const process = [...ctx.live.values()].find((record) => record.kind === "process")!;
    const { startTime: _, ...withoutStart } = process.detail!;
    // A reused pid looks like a different start time; an old record may carry none.
    for (const detail of [{ ...withoutStart, startTime: "1" }, withoutStart]) {
      await assert.rejects(
        () => maintenance.removeResource({ ...process, detail }),
        (error: unknown) =>
          error instanceof DriverError && /identity cannot be confirmed/.test(error.message) &&
          error.message.includes(`kill -KILL -- -${process.id}`),
      );
    }
    const state = await Promise.race([
      handle.wait().then(() => "exited"),
      new Promise((resolve) => setTimeout(() => resolve("running"), 300)),
    ]);
    assert.equal(state, "running", "a refused kill leaves the group alone");
    await maintenance.removeResource(process);
    assert.equal((await handle.wait()).code, 137);
    // Once the group is gone, a record without identity is simply done.
    await maintenance.removeResource({ ...process, detail: withoutStart });
  } finally {
    await driver.close();
    await ctx.dispose();
  }
});

Deno.test("native: the replay buffer keeps head and tail and marks what it dropped", () => {
  const buffer = new ReplayBuffer(4, 6);
  const encoder = new TextEncoder();
  buffer.push("stdout", encoder.encode("abcdef"));
  buffer.push("stderr", encoder.encode("ghi"));
  buffer.push("stdout", encoder.encode("jkl"));
  buffer.push("stdout", encoder.encode("mno"));
  const decoder = new TextDecoder();
  const chunks = buffer.chunks().map((chunk) => [chunk.stream, decoder.decode(chunk.chunk)]);
  assert.equal(buffer.droppedBytes, 5);
  assert.deepEqual(chunks, [
    ["stdout", "abcd"],
    ["stderr", "\n[pocketci: 5 bytes of output omitted from the replay]\n"],
    ["stdout", "jkl"],
    ["stdout", "mno"],
  ]);
});

Deno.test("native: the factory's capabilities match the driver's and unsupported options name the capability", async () => {
  const ctx = await createTestContext();
  const driver = await nativeFactory.create({}, ctx);
  try {
    const { available } = await detectCgroups();
    assert.deepEqual(driver.capabilities, nativeCapabilities(available));
    assert.deepEqual(nativeFactory.capabilities({}), driver.capabilities);
    assert.deepEqual({ ...driver.capabilities, limits: false }, NATIVE_CAPABILITIES);
    await assert.rejects(
      () => driver.startTask(sh("true", { user: "nobody" }), () => {}),
      /the native driver does not support user/,
    );
  } finally {
    await driver.close();
    await ctx.dispose();
  }
});

Deno.test("native: the declared permissions are enough to run tasks, volumes, archives and sandboxes", async () => {
  const root = await Deno.makeTempDir({ prefix: "pocketci-native-perms-" });
  try {
    const stateDir = `${root}/state`;
    const flags = permissionFlags([
      ...nativePermissions({ stateDir }),
      {
        permission: "read",
        values: [new URL("../..", import.meta.url).pathname.replace(/\/$/, "")],
        reason: "source",
      },
    ]);
    const script = new URL("./testdata/permissions_probe.ts", import.meta.url).pathname;
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", ...flags, script, stateDir],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(result.stdout);
    const stderr = new TextDecoder().decode(result.stderr);
    assert.equal(result.code, 0, `probe failed with ${flags.join(" ")}:\n${stdout}\n${stderr}`);
    assert.equal(stdout.trim(), "probe ok");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("native: concurrent createVolume calls for one name share one volume and one record", async () => {
  const ctx = await createTestContext();
  const driver = await nativeFactory.create({}, ctx);
  try {
    const handles = await Promise.all(
      Array.from({ length: 5 }, () => driver.createVolume({ name: "same", kind: "volume" })),
    );
    assert.equal(new Set(handles.map((handle) => handle.id)).size, 1);
    assert.equal(ctx.recorded.filter((record) => record.id === handles[0].id).length, 1);
    const caches = await Promise.all(
      Array.from({ length: 3 }, () => driver.createVolume({ name: "same", kind: "cache" })),
    );
    assert.equal(new Set(caches.map((handle) => handle.id)).size, 1);
    assert.notEqual(caches[0].id, handles[0].id);
  } finally {
    assert.deepEqual((await driver.close()).failed, []);
    assert.deepEqual([...ctx.live.values()], []);
    assert.deepEqual(ctx.unmatchedForgets, []);
    await ctx.dispose();
  }
});

Deno.test("native: a failing journal write is a warning, not a crash", async () => {
  const ctx = await createTestContext();
  const failing = {
    ...ctx,
    record: (resource: Parameters<typeof ctx.record>[0]) =>
      resource.kind === "process" ? Promise.reject(new Error("disk full")) : ctx.record(resource),
  };
  const driver = await nativeFactory.create({}, failing);
  try {
    const output = new OutputCollector();
    const handle = await driver.startTask(sh("echo fine"), output.sink);
    assert.equal((await handle.wait()).code, 0);
    assert.equal(output.stdout, "fine\n");
    assert.ok(ctx.warnings.some((warning) => warning.includes("disk full")), ctx.warnings.join());
  } finally {
    await driver.close();
    assert.deepEqual(ctx.unmatchedForgets, []);
    await ctx.dispose();
  }
});
