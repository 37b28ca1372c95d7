/**
 * qemu driver benchmarks (issue 12) on the minimal test guest of `.ci/setup_qemu.sh`
 * (`accel=tcg`, direct kernel boot):
 * - time from starting `pocketci run --driver=qemu:...` to the first task's output (boot
 *   included), median of 3;
 * - per-command overhead in a booted VM: 30 sequential sandbox execs of `true` and 30 tasks
 *   (start, wait, remove) against 30 raw guest-agent round trips (`guest-exec /bin/true`, then
 *   `guest-exec-status` polled every millisecond until it exited). Goal: <= 1.2x. Then what
 *   the wrapper's steps cost as raw round trips of a shell doing each (the shell alone is the
 *   floor of any shell-based wrapper).
 *
 * Run with `deno task bench` or `deno run -A --unstable-worker-options bench/qemu.ts`.
 *
 * @module
 */

// deno-lint-ignore-file no-console

import { DENO, median, pocketciRunArgs } from "./common.ts";
import { createTestContext } from "../tests/conformance/context.ts";
import { guestConfig, guestDsn, guestProblem } from "../tests/qemu/guest_fixture.ts";
import { qemuConfig } from "../drivers/qemu/config.ts";
import { createQemuDriver } from "../drivers/qemu/driver.ts";
import { Machine } from "../drivers/qemu/machine.ts";
import { acquireSlot, slotRoot, tempDir } from "../drivers/qemu/vm_slots.ts";

const EXECS = 30;

async function firstOutput(dir: string): Promise<number> {
  const pipeline = `${dir}/first.ts`;
  await Deno.writeTextFile(
    pipeline,
    `import { pipeline, task } from "pocketci";
export default pipeline("first", async () => {
  await task("t").sh("echo first-output-marker");
});
`,
  );
  const started = performance.now();
  const child = new Deno.Command(DENO, {
    args: pocketciRunArgs(pipeline, [`--driver=${guestDsn()}`]),
    env: { POCKETCI_STATE_DIR: `${dir}/.state`, POCKETCI_NO_AUTO_GC: "1" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let seen: number | undefined;
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    text += decoder.decode(chunk, { stream: true });
    if (seen === undefined && text.includes("first-output-marker")) {
      seen = performance.now() - started;
    }
  }
  const status = await child.status;
  if (!status.success || seen === undefined) throw new Error(`the run failed: ${text}`);
  return seen;
}

async function driverExecs(): Promise<{ exec: number; task: number }> {
  const ctx = await createTestContext();
  const driver = await createQemuDriver(qemuConfig(guestConfig()), ctx, { progress: () => {} });
  try {
    const box = await driver.startSandbox({
      id: "box",
      name: "box",
      command: [],
      env: {},
      mounts: [],
    });
    await box.exec({ command: ["true"] }, () => {});
    const execs: number[] = [];
    for (let i = 0; i < EXECS; i++) {
      const started = performance.now();
      const status = await box.exec({ command: ["true"] }, () => {});
      if (status.code !== 0) throw new Error(`exec exited ${status.code}`);
      execs.push(performance.now() - started);
    }
    await box.close();
    const tasks: number[] = [];
    for (let i = 0; i < EXECS; i++) {
      const started = performance.now();
      const handle = await driver.startTask(
        { id: `t${i}`, name: "t", command: ["true"], env: {}, mounts: [] },
        () => {},
      );
      if ((await handle.wait()).code !== 0) throw new Error("task failed");
      await handle.remove();
      tasks.push(performance.now() - started);
    }
    return { exec: median(execs), task: median(tasks) };
  } finally {
    await driver.close();
    await ctx.dispose();
  }
}

/** Median of raw agent round trips running `path args` (exec, then status polled every ms). */
async function roundTrips(machine: Machine, path: string, args: string[]): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i <= EXECS; i++) {
    const started = performance.now();
    const pid = await machine.qga.exec({ path, args, capture: false }, 10_000);
    while (!(await machine.qga.execStatus(pid, 10_000)).exited) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    if (i > 0) times.push(performance.now() - started);
  }
  return median(times);
}

/**
 * What the wrapper's steps cost in the guest, each as a raw round trip of a shell doing it:
 * the floor any shell-based wrapper pays is the `sh -c :` line.
 */
const WRAPPER_STEPS: readonly [string, string[]][] = [
  ["sh -c : (a shell that does nothing)", ["-c", ":"]],
  ["sh, then true in the background and wait", ["-c", "true & wait $!"]],
  ["sh, then setsid true in the background and wait", ["-c", "setsid true & wait $!"]],
  ["sh, then one small write to a file on the 9p share", ["-c", "echo 1 > /mnt/pocketci/x"]],
];

async function rawRoundTrips(): Promise<{ raw: number; steps: [string, number][] }> {
  const dir = await acquireSlot(slotRoot(tempDir(), Deno.uid()), "bench");
  const share = await Deno.makeTempDir({ prefix: "pocketci-bench-share-" });
  const machine = await Machine.boot({
    config: qemuConfig(guestConfig()),
    dir,
    shares: [{ tag: "pocketci", hostPath: share, mountPoint: "/mnt/pocketci" }],
    instanceId: "bench",
    progress: () => {},
    started: () => Promise.resolve(),
  });
  try {
    const raw = await roundTrips(machine, "/bin/true", []);
    const steps: [string, number][] = [];
    for (const [label, args] of WRAPPER_STEPS) {
      steps.push([label, await roundTrips(machine, "/bin/sh", args)]);
    }
    return { raw, steps };
  } finally {
    await machine.shutdown();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(share, { recursive: true });
  }
}

if (import.meta.main) {
  const problem = await guestProblem();
  if (problem) {
    console.log(`skipped: ${problem}`);
    Deno.exit(0);
  }
  const dir = await Deno.makeTempDir({ prefix: "pocketci-bench-qemu-" });
  try {
    const first: number[] = [];
    for (let i = 0; i < 3; i++) first.push(await firstOutput(dir));
    console.log(
      `pocketci run to the first task's output (boot included, TCG): median ${
        (median(first) / 1000).toFixed(2)
      } s of ${first.map((ms) => (ms / 1000).toFixed(2)).join(", ")}`,
    );
    const { raw, steps } = await rawRoundTrips();
    const { exec, task } = await driverExecs();
    console.log(`raw guest-exec + guest-exec-status round trip: median ${raw.toFixed(1)} ms`);
    for (const [label, ms] of steps) {
      console.log(`  raw round trip of ${label}: ${ms.toFixed(1)} ms = ${(ms / raw).toFixed(2)}x`);
    }
    console.log(
      `sandbox exec of true: median ${exec.toFixed(1)} ms = ${
        (exec / raw).toFixed(2)
      }x raw (goal <= 1.2x: ${exec / raw <= 1.2 ? "met" : "MISSED"})`,
    );
    console.log(
      `task of true (start, wait, remove): median ${task.toFixed(1)} ms = ${
        (task / raw).toFixed(2)
      }x raw`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
