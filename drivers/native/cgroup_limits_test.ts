/**
 * Limits on the real host. They run wherever the host allows cgroups; in CI
 * (CI=true) a host without usable cgroups fails them instead of skipping.
 */

import assert from "node:assert/strict";
import {
  type Driver,
  DriverError,
  type ResourceRecord,
  type TaskSpec,
  UnsupportedError,
} from "../contract.ts";
import { createTestContext, type TestContext } from "../../tests/conformance/context.ts";
import { OutputCollector } from "../../tests/conformance/driver_suite.ts";
import { detectCgroups } from "./cgroup_detect.ts";
import { createNativeDriver } from "./driver.ts";
import { createNativeMaintenance } from "./maintenance.ts";
import { runShell } from "./shell.ts";
import { parseJournal } from "../../runner/state.ts";
import { readUntil, runCli, tempProject } from "../../tests/helpers/cli.ts";

const support = await detectCgroups();
const required = Deno.env.get("CI") === "true";
const MiB = 1024 * 1024;

function limitsTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: `native limits: ${name}`,
    ignore: !support.available && !required,
    fn: async () => {
      assert.ok(
        support.available,
        `this CI host cannot apply limits: ${support.available ? "" : support.reason}`,
      );
      await fn();
    },
  });
}

let counter = 0;
function sh(script: string, extra: Partial<TaskSpec> = {}): TaskSpec {
  const id = `lim-${++counter}`;
  return { id, name: id, command: ["sh", "-c", script], env: {}, mounts: [], ...extra };
}

/** Prints "quota period" of the cgroup the calling process is in (v1 or v2). */
const READ_CPU = `while IFS=: read -r id ctl path; do
  case ",$ctl," in
    ,,) for f in "/sys/fs/cgroup$path/cpu.max" "/sys/fs/cgroup/unified$path/cpu.max"; do
          if [ -r "$f" ]; then cat "$f"; exit 0; fi; done ;;
    *,cpu,*) d="/sys/fs/cgroup/$ctl$path"
          if [ -r "$d/cpu.cfs_quota_us" ]; then
            echo "$(cat "$d/cpu.cfs_quota_us") $(cat "$d/cpu.cfs_period_us")"; exit 0; fi ;;
  esac
done < /proc/self/cgroup
echo "no cpu cgroup found"; exit 1`;

/** Prints the memory limit of the cgroup the calling process is in (v1 or v2). */
const READ_MEMORY = `while IFS=: read -r id ctl path; do
  case ",$ctl," in
    ,,) for f in "/sys/fs/cgroup$path/memory.max" "/sys/fs/cgroup/unified$path/memory.max"; do
          if [ -r "$f" ]; then cat "$f"; exit 0; fi; done ;;
    *,memory,*) f="/sys/fs/cgroup/$ctl$path/memory.limit_in_bytes"
          if [ -r "$f" ]; then cat "$f"; exit 0; fi ;;
  esac
done < /proc/self/cgroup
echo "no memory cgroup found"; exit 1`;

const ALLOCATE_200MB = 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo "${#x}"';

async function exists(path: string): Promise<boolean> {
  return (await runShell('[ -e "$1" ]', [path])).code === 0;
}

/** True while `pid` runs (a zombie waiting for its new parent to reap it counts as dead). */
async function alive(pid: string): Promise<boolean> {
  const script = '[ -e "/proc/$1" ] && ! grep -q "^State:[[:space:]]*Z" "/proc/$1/status"';
  return (await runShell(script, [pid])).code === 0;
}

function cgroupRecords(ctx: TestContext): ResourceRecord[] {
  return ctx.recorded.filter((record) => record.kind === "cgroup");
}

async function withDriver(body: (driver: Driver, ctx: TestContext) => Promise<void>) {
  const ctx = await createTestContext();
  const driver = await createNativeDriver(ctx);
  try {
    await body(driver, ctx);
  } finally {
    const report = await driver.close();
    try {
      assert.deepEqual(report.failed, []);
      assert.deepEqual([...ctx.live.values()], [], "records left after close()");
      assert.deepEqual(ctx.unmatchedForgets, []);
      for (const record of cgroupRecords(ctx)) {
        assert.equal(await exists(record.id), false, `${record.id} still exists after close()`);
      }
    } finally {
      await ctx.dispose();
    }
  }
}

async function run(driver: Driver, spec: TaskSpec) {
  const output = new OutputCollector();
  const handle = await driver.startTask(spec, output.sink);
  return { status: await handle.wait(), stdout: output.stdout, stderr: output.stderr };
}

limitsTest("a task over its memory limit is OOM-killed: code 137, oomKilled", async () => {
  await withDriver(async (driver, ctx) => {
    assert.equal(driver.capabilities.limits, true);
    const result = await run(driver, sh(ALLOCATE_200MB, { limits: { memoryBytes: 32 * MiB } }));
    assert.deepEqual(result.status, { code: 137, signal: 9, oomKilled: true });
    const records = cgroupRecords(ctx);
    assert.ok(records.some((record) => record.detail?.task !== undefined), "task cgroup recorded");
    for (const record of records.filter((r) => r.detail?.task !== undefined)) {
      assert.equal(await exists(record.id), false, "the task's cgroup is removed when it ends");
      assert.equal(ctx.live.has(`cgroup:${record.id}`), false, "and forgotten");
    }
    const fits = await run(driver, sh(ALLOCATE_200MB, { limits: { memoryBytes: 512 * MiB } }));
    assert.deepEqual([fits.status, fits.stdout], [{ code: 0 }, "200000000\n"]);
  });
});

limitsTest("a task sees its CPU quota and memory limit in its own cgroup", async () => {
  await withDriver(async (driver) => {
    const cpu = await run(driver, sh(READ_CPU, { limits: { cpu: 0.5 } }));
    assert.equal(cpu.status.code, 0, cpu.stdout + cpu.stderr);
    assert.equal(cpu.stdout, "50000 100000\n");
    const both = await run(
      driver,
      sh(`(${READ_MEMORY}) && (${READ_CPU})`, {
        limits: { cpu: 1.25, memoryBytes: 64 * MiB },
      }),
    );
    assert.equal(both.stdout, `${64 * MiB}\n125000 100000\n`);
    const unlimited = await run(driver, sh(READ_CPU));
    assert.notEqual(unlimited.stdout, "50000 100000\n", "tasks without limits stay outside");
  });
});

limitsTest(
  "the command's argv passes through the cgroup wrapper untouched; exit codes are kept",
  async () => {
    await withDriver(async (driver) => {
      const args = ["$(echo injected)", "a b", "'\"", "*", "-n", ""];
      const printed = await run(driver, {
        ...sh(""),
        command: ["printf", "[%s]", ...args],
        limits: { memoryBytes: 64 * MiB },
      });
      assert.equal(printed.stdout, args.map((arg) => `[${arg}]`).join(""));
      const failing = await run(driver, sh("exit 3", { limits: { cpu: 1 } }));
      assert.deepEqual(failing.status, { code: 3 });
      const terminated = await run(driver, sh("kill -15 $$; sleep 5", { limits: { cpu: 1 } }));
      assert.deepEqual(terminated.status, { code: 143, signal: 15 });
      const group = await run(driver, sh("echo $$ $(ps -o pgid= -p $$)", { limits: { cpu: 1 } }));
      const [pid, pgid] = group.stdout.trim().split(/\s+/);
      assert.equal(pid, pgid, "the task still leads its own process group");
      await assert.rejects(
        () => run(driver, { ...sh(""), command: ["pocketci-no-such-cmd"], limits: { cpu: 1 } }),
        (error: unknown) => error instanceof DriverError && error.code === "command_not_found",
      );
      await assert.rejects(
        () => run(driver, sh("true", { limits: { cpu: -1 } })),
        (error: unknown) => error instanceof DriverError && error.code === "invalid",
      );
    });
  },
);

limitsTest("processes that left the task's process group die with its cgroup", async () => {
  await withDriver(async (driver) => {
    const result = await run(
      driver,
      sh("setsid sleep 300 >/dev/null 2>&1 < /dev/null & echo $!", { limits: { cpu: 1 } }),
    );
    assert.equal(result.status.code, 0);
    const pid = result.stdout.trim();
    assert.match(pid, /^\d+$/);
    assert.equal(await alive(pid), false, "the escaped sleep was killed");
  });
});

limitsTest(
  "a sandbox's calls share its limits; an OOM-killed call says so; close removes it",
  async () => {
    await withDriver(async (driver, ctx) => {
      const box = await driver.startSandbox(
        sh("", { command: [], limits: { memoryBytes: 32 * MiB, cpu: 0.5 } }),
      );
      const output = new OutputCollector();
      assert.deepEqual(await box.exec({ command: ["sh", "-c", READ_CPU] }, output.sink), {
        code: 0,
      });
      assert.equal(output.stdout, "50000 100000\n");
      const oom = await box.exec({ command: ["sh", "-c", ALLOCATE_200MB] }, () => {});
      assert.deepEqual(oom, { code: 137, signal: 9, oomKilled: true });
      const killed = await box.exec({ command: ["sh", "-c", "kill -9 $$"] }, () => {});
      assert.deepEqual(killed, { code: 137, signal: 9 }, "a plain SIGKILL is not an OOM kill");
      const dirs = cgroupRecords(ctx).filter((r) => r.detail?.sandbox !== undefined);
      assert.ok(dirs.length > 0);
      const started = new OutputCollector();
      const running = box.exec({ command: ["sh", "-c", "echo up; exec sleep 300"] }, started.sink);
      await started.waitFor("stdout", "up");
      await box.close();
      assert.equal((await running).code, 137);
      for (const record of dirs) assert.equal(await exists(record.id), false);
    });
  },
);

limitsTest("a task still running at close() is killed and its cgroup removed", async () => {
  await withDriver(async (driver, ctx) => {
    const output = new OutputCollector();
    await driver.startTask(
      sh("echo up; sleep 300", { limits: { memoryBytes: 64 * MiB } }),
      output.sink,
    );
    await output.waitFor("stdout", "up");
    assert.ok(cgroupRecords(ctx).length >= 2, "run and task cgroups recorded");
  });
});

limitsTest("gc removes the cgroups a dead run left, killing what runs in them", async () => {
  const ctx = await createTestContext();
  const driver = await createNativeDriver(ctx);
  try {
    const output = new OutputCollector();
    const handle = await driver.startTask(
      sh("echo up; sleep 300", { limits: { cpu: 0.5, memoryBytes: 64 * MiB } }),
      output.sink,
    );
    await output.waitFor("stdout", "up");
    const maintenance = await createNativeMaintenance(ctx);
    // What a journal of a killed run holds, newest first as gc removes it.
    const leftovers = [...ctx.live.values()].filter((r) => r.kind === "cgroup").reverse();
    assert.ok(leftovers.length >= 2);
    for (const record of leftovers) await maintenance.removeResource(record);
    for (const record of leftovers) assert.equal(await exists(record.id), false, record.id);
    assert.equal((await handle.wait()).code, 137, "the task died with its cgroup");
    for (
      const id of ["/sys/fs/cgroup/memory", "/etc/pocketci/x", "/sys/fs/cgroup/cpu/pocketci/../x"]
    ) {
      await assert.rejects(
        () => maintenance.removeResource({ kind: "cgroup", id, driver: "native" }),
        (error: unknown) => error instanceof DriverError && error.code === "invalid",
      );
    }
  } finally {
    assert.deepEqual((await driver.close()).failed, []);
    await ctx.dispose();
  }
});

Deno.test("native limits: a host without usable cgroups refuses limits and says why", async () => {
  const ctx = await createTestContext();
  const reason = "the cgroup v1 group /sys/fs/cgroup/memory is not writable by this user";
  const driver = await createNativeDriver(ctx, { cgroups: { available: false, reason } });
  try {
    assert.equal(driver.capabilities.limits, false);
    assert.deepEqual(driver.unsupportedReasons, { limits: reason });
    for (const limits of [{ cpu: 1 }, { memoryBytes: 64 * MiB }]) {
      await assert.rejects(
        () => driver.startTask(sh("true", { limits }), () => {}),
        (error: unknown) =>
          error instanceof UnsupportedError && error.capability === "limits" &&
          error.message.endsWith(`sets CPU or memory limits, but ${reason}`),
      );
      await assert.rejects(
        () => driver.startSandbox(sh("", { command: [], limits })),
        (error: unknown) => error instanceof UnsupportedError && error.capability === "limits",
      );
    }
    assert.equal((await run(driver, sh("echo fine"))).stdout, "fine\n");
  } finally {
    await driver.close();
    await ctx.dispose();
  }
});

limitsTest("pocketci gc removes the cgroups of a run killed with kill -9", async () => {
  const dir = await tempProject({
    "pipeline.ts": `import { pipeline, task } from "pocketci";
export default pipeline("limited", async () => {
  await task("long").limits({ cpu: 0.5, memory: "64Mi" }).sh("echo started; sleep 120");
});`,
  });
  const stateDir = `${dir}/.state`;
  const env = { POCKETCI_STATE_DIR: stateDir, NO_COLOR: "1" };
  const runner = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-worker-options",
      `--config=${new URL("../../deno.json", import.meta.url).pathname}`,
      new URL("../../pocketci.ts", import.meta.url).pathname,
      "run",
      "--in-process",
      `${dir}/pipeline.ts`,
    ],
    env,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const reader = await readUntil(runner.stdout, "long | started");
    runner.kill("SIGKILL");
    await runner.status;
    await reader.cancel();
    const outstanding = [];
    for await (const entry of Deno.readDir(`${stateDir}/runs`)) {
      const path = `${stateDir}/runs/${entry.name}`;
      outstanding.push(...parseJournal(path, await Deno.readTextFile(path)).outstanding);
    }
    const cgroups = outstanding.filter((resource) => resource.kind === "cgroup");
    const process = outstanding.find((resource) => resource.kind === "process");
    assert.ok(cgroups.length >= 2 && process !== undefined, JSON.stringify(outstanding));
    for (const cgroup of cgroups) assert.ok(await exists(cgroup.id), `${cgroup.id} was left`);

    const collected = await runCli(["gc"], { env });
    assert.equal(collected.code, 0, collected.stdout + collected.stderr);
    assert.match(collected.stdout, /removed\s+native cgroup/);
    for (const cgroup of cgroups) assert.equal(await exists(cgroup.id), false, cgroup.id);
    assert.equal(await alive(process.id), false, "the task died with its cgroups");
  } finally {
    try {
      runner.kill("SIGKILL");
    } catch {
      // already gone
    }
    await runner.status;
    await Deno.remove(dir, { recursive: true });
  }
});
