/**
 * Docker driver benchmarks (issue 4), on the local engine with the local `busybox` image:
 * - 50 sequential trivial tasks (`true`) through `pocketci run --driver=docker`, against 50
 *   `docker run --rm busybox true` from a bash loop and against the raw API floor (dockerode
 *   create/start/wait/remove in a plain script, same HostConfig). Goals: <= 0.9x the CLI loop,
 *   <= 1.1x the raw floor.
 * - 20 such tasks in parallel, the same three ways.
 * - A task writing 200 MB to stdout (as one line, then as 100-byte lines): the driver's throughput against `docker logs` of the same
 *   container, and peak memory (driver alone and the whole `pocketci run` process tree). Goals:
 *   >= 0.8x `docker logs`; peak memory < 150 MB.
 * - 20 sequential tasks over SSH (`ssh://root@127.0.0.1`, a real local sshd) against the same
 *   on the local socket. Goal: <= 1.3x.
 *
 * Run with `deno task bench` or `deno run -A --unstable-worker-options bench/docker.ts`; add
 * `--only=tasks`, `--only=output` or `--only=ssh` for one group of figures alone.
 *
 * @module
 */

// deno-lint-ignore-file no-console

import { DENO, median, pocketciRunArgs, ROOT, run } from "./common.ts";

const IMAGE = "busybox:latest";
const SEQUENTIAL = 50;
const PARALLEL = 20;
const SSH_TASKS = 20;
const BIG_BYTES = 200_000_000;

function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}x`;
}

function verdict(ok: boolean): string {
  return ok ? "met" : "MISSED";
}

/** Runs a pipeline through the real CLI; returns the ELAPSED figure it logs. */
async function pocketci(
  dir: string,
  name: string,
  body: string,
  driver: string,
  env: Record<string, string> = {},
): Promise<number> {
  await Deno.writeTextFile(
    `${dir}/${name}.ts`,
    `import { pipeline, task } from "pocketci";
export default pipeline(${JSON.stringify(name)}, async () => {
  const t = task("t").image(${JSON.stringify(IMAGE)});
  const started = performance.now();
${body}
  console.log("ELAPSED " + (performance.now() - started));
});
`,
  );
  const result = await run(
    DENO,
    pocketciRunArgs(`${dir}/${name}.ts`, [
      "--json",
      `--driver=${driver}`,
      `--state-dir=${dir}/state`,
    ]),
    { env: { NO_COLOR: "1", ...env } },
  );
  if (result.code !== 0) {
    throw new Error(
      `pocketci run ${name} failed (${result.code}): ${result.stderr}${result.stdout.slice(-2000)}`,
    );
  }
  const elapsed = Number(/"message":"ELAPSED ([\d.]+)/.exec(result.stdout)?.[1]);
  if (!Number.isFinite(elapsed)) {
    throw new Error(`no ELAPSED in pocketci output: ${result.stdout.slice(-500)}`);
  }
  return elapsed;
}

/**
 * The raw API floor: dockerode create/start/wait/remove with the driver's HostConfig. Sequential
 * tasks join one network holder (a pause container from the driver's helper image, made inside
 * the timed part as the driver makes its own); parallel ones join the network themselves, as all
 * but one of the driver's first parallel tasks do.
 */
async function rawFloor(dir: string, count: number, parallel: boolean): Promise<number> {
  await Deno.writeTextFile(
    `${dir}/raw.ts`,
    `import Docker from "dockerode";
import { ensureHelperImage, HELPER_IMAGE } from "${ROOT}drivers/docker/helper_image.ts";
import { pausePath } from "${ROOT}drivers/docker/pause_binary.ts";
const docker = new Docker({ socketPath: "/var/run/docker.sock" });
await ensureHelperImage(docker);
const network = "pocketci-bench-raw-" + Date.now();
await docker.createNetwork({ Name: network, Driver: "bridge" });
const started = performance.now();
let mode = network;
let holder;
if (!${parallel}) {
  holder = await docker.createContainer({
    Image: HELPER_IMAGE, Cmd: [pausePath((await docker.version()).Arch)],
    HostConfig: { NetworkMode: network },
  });
  await holder.start();
  mode = "container:" + holder.id;
}
async function one() {
  const c = await docker.createContainer({
    Image: ${JSON.stringify(IMAGE)}, Cmd: ["true"], Entrypoint: [""], WorkingDir: "/workspace",
    AttachStdout: true, AttachStderr: true,
    HostConfig: { Init: true, NetworkMode: mode, Mounts: [] },
  });
  await c.start();
  await c.wait();
  await c.remove({ force: true });
}
if (${parallel}) await Promise.all(Array.from({ length: ${count} }, one));
else for (let i = 0; i < ${count}; i++) await one();
console.log("ELAPSED " + (performance.now() - started));
await holder?.remove({ force: true });
await docker.getNetwork(network).remove();
`,
  );
  const result = await run(DENO, ["run", "-A", `--config=${ROOT}deno.json`, `${dir}/raw.ts`]);
  if (result.code !== 0) throw new Error(`raw floor failed: ${result.stderr}`);
  return Number(/ELAPSED ([\d.]+)/.exec(result.stdout)?.[1]);
}

/** `docker run --rm` in a bash loop; `network` puts each container on that network. */
async function cliLoop(count: number, parallel: boolean, network?: string): Promise<number> {
  const run1 = `docker run --rm${network ? ` --network ${network}` : ""} ${IMAGE} true`;
  const loop = parallel
    ? `for i in $(seq ${count}); do ${run1} & done; wait`
    : `for i in $(seq ${count}); do ${run1}; done`;
  const result = await run("bash", [
    "-c",
    `s=$(date +%s%N); ${loop}; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`,
  ]);
  if (result.code !== 0) throw new Error(`docker CLI loop failed: ${result.stderr}`);
  return Number(result.stdout.trim().split("\n").pop()) / 1000;
}

async function tasks(dir: string): Promise<string[]> {
  const lines: string[] = [];
  for (const parallel of [false, true]) {
    const count = parallel ? PARALLEL : SEQUENTIAL;
    // The three ways run in interleaved rounds, so that load from anything else on the machine
    // falls on all three alike: sequential 5 rounds of 10 tasks, parallel 3 rounds of 20.
    const rounds = parallel ? 3 : 5;
    const batch = parallel ? count : count / rounds;
    const body = parallel
      ? `  await Promise.all(Array.from({ length: ${batch} }, () => t.run("true")));`
      : `  for (let i = 0; i < ${batch}; i++) await t.run("true");`;
    let ours = 0;
    let cli = 0;
    let raw = 0;
    let cliOwnNetwork = 0;
    // What the per-run network costs by itself: the same CLI loop on a user-defined network.
    const network = `pocketci-bench-cli-${Date.now()}`;
    await run("docker", ["network", "create", network]);
    try {
      for (let round = 0; round < rounds; round++) {
        ours += await pocketci(dir, parallel ? "parallel" : "sequential", body, "docker");
        cli += await cliLoop(batch, parallel);
        raw += await rawFloor(dir, batch, parallel);
        cliOwnNetwork += await cliLoop(batch, parallel, network);
      }
    } finally {
      await run("docker", ["network", "rm", network]);
    }
    const tasksRun = batch * rounds;
    const per = (ms: number) => `${(ms / tasksRun).toFixed(0)} ms/task`;
    const title = parallel
      ? `${count} trivial tasks in parallel (x${rounds})`
      : `${count} sequential trivial tasks`;
    lines.push(
      `${title}: pocketci ${per(ours)}, docker CLI ${per(cli)}, raw API ${per(raw)}; ratio ${
        ratio(ours, cli)
      } CLI (goal <= 0.9x: ${verdict(ours <= 0.9 * cli)}), ${ratio(ours, raw)} raw (goal <= 1.1x: ${
        verdict(ours <= 1.1 * raw)
      }); docker CLI on a user-defined network ${per(cliOwnNetwork)} (${
        ratio(ours, cliOwnNetwork)
      })`,
    );
    console.log(lines.at(-1));
  }
  return lines;
}

/** Peak memory of `pocketci run`'s processes, by role. */
interface TreePeaks {
  /** The largest sum of the resident sizes of the processes alive at the same moment. */
  tree: number;
  /** The CLI process (the root). */
  cli: number;
  /** The type-check process, which exits before the pipeline starts. */
  typeCheck: number;
  /** The runner child: the pipeline worker and the driver, where the task's output flows. */
  runner: number;
}

/**
 * Peak memory of a process tree, sampled every 50 ms until `done` settles: the largest sum of the
 * resident sizes (VmRSS) of the processes alive at the same moment, and each process's own peak
 * (VmHWM) by role. Summing each process's own peak would add up processes that never ran at the
 * same time.
 */
async function peakTreeRss(root: number, done: Promise<unknown>): Promise<TreePeaks> {
  let finished = false;
  done.finally(() => finished = true);
  const peaks: TreePeaks = { tree: 0, cli: 0, typeCheck: 0, runner: 0 };
  while (!finished) {
    const pids = [root];
    for await (const entry of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      try {
        const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        if (pids.includes(ppid)) pids.push(Number(entry.name));
      } catch {
        // Exited meanwhile.
      }
    }
    let sum = 0;
    for (const pid of pids) {
      try {
        const status = await Deno.readTextFile(`/proc/${pid}/status`);
        const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
        sum += Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
        const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
        const role = pid === root ? "cli" : cmdline.includes("\0check\0") ? "typeCheck" : "runner";
        peaks[role] = Math.max(peaks[role], hwm);
      } catch {
        // Exited meanwhile.
      }
    }
    peaks.tree = Math.max(peaks.tree, sum);
    await new Promise((r) => setTimeout(r, 50));
  }
  return peaks;
}

/** One round of the output benchmark: milliseconds for each way, and the driver's peak RSS. */
interface OutputRound {
  ours: number;
  logs: number;
  floor: number;
  attached: number;
  peak: number;
}

/**
 * Streams one task's 200 MB output through the driver, then times `docker logs` of the same
 * container, the same container with nobody reading (start to exit: the engine copies output
 * into its log file as the task writes it, so this is the ceiling for any live reader), and
 * `docker run` attached.
 */
async function outputRound(
  driver: import("../drivers/contract.ts").Driver,
  script: string,
): Promise<OutputRound> {
  let bytes = 0;
  let peak = Deno.memoryUsage().rss;
  const sampler = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 20);
  const started = performance.now();
  const handle = await driver.startTask(
    {
      id: `big-${Date.now()}`,
      name: "big",
      image: IMAGE,
      command: ["sh", "-c", script],
      env: {},
      mounts: [],
    },
    (_stream, chunk) => bytes += chunk.length,
  );
  await handle.wait();
  const ours = performance.now() - started;
  clearInterval(sampler);
  if (bytes !== BIG_BYTES) throw new Error(`received ${bytes} bytes, expected ${BIG_BYTES}`);
  const id = (handle as unknown as { container: { id: string } }).container.id;
  const logs = await run("bash", [
    "-c",
    `s=$(date +%s%N); docker logs ${id} | wc -c; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`,
  ]);
  const [count, micros] = logs.stdout.trim().split("\n").map(Number);
  if (count !== BIG_BYTES) throw new Error(`docker logs gave ${count} bytes`);
  await handle.remove();
  const floor = await run("bash", [
    "-c",
    `id=$(docker create ${IMAGE} sh -c "${script}"); s=$(date +%s%N); docker start $id >/dev/null; docker wait $id >/dev/null; e=$(date +%s%N); docker rm $id >/dev/null; echo $(( (e - s) / 1000 ))`,
  ]);
  const attached = await run("bash", [
    "-c",
    `s=$(date +%s%N); docker run --rm ${IMAGE} sh -c "${script}" | wc -c >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`,
  ]);
  return {
    ours,
    logs: micros / 1000,
    floor: Number(floor.stdout.trim()) / 1000,
    attached: Number(attached.stdout.trim()) / 1000,
    peak,
  };
}

const OUTPUT_ROUNDS = 3;

/** The output figures over {@link OUTPUT_ROUNDS} rounds: medians, and ratios taken per round. */
async function outputFigure(
  driver: import("../drivers/contract.ts").Driver,
  label: string,
  script: string,
): Promise<string> {
  const rounds: OutputRound[] = [];
  for (let i = 0; i < OUTPUT_ROUNDS; i++) rounds.push(await outputRound(driver, script));
  const m = (pick: (r: OutputRound) => number) => median(rounds.map(pick));
  const mbps = (ms: number) => `${(BIG_BYTES / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;
  const x = (value: number) => `${value.toFixed(2)}x`;
  const vsLogs = m((r) => r.logs / r.ours);
  const peak = Math.max(...rounds.map((r) => r.peak));
  return `${label} (driver, median of ${OUTPUT_ROUNDS}): ${
    mbps(m((r) => r.ours))
  } (task start to exit, all bytes delivered) vs docker logs of the same container ` +
    `${mbps(m((r) => r.logs))}: ${x(vsLogs)} (goal >= 0.8x: ${verdict(vsLogs >= 0.8)}; rounds ${
      rounds.map((r) => x(r.logs / r.ours)).join(", ")
    }); peak RSS ${(peak / 1e6).toFixed(0)} MB (goal < 150 MB: ${verdict(peak < 150e6)}); ` +
    `the same container with nobody reading, start to exit: ${mbps(m((r) => r.floor))} ` +
    `(pocketci ${x(m((r) => r.floor / r.ours))} of that); docker run attached ${
      mbps(m((r) => r.attached))
    }; a script's way to the same output (run detached, wait, docker logs): ${
      mbps(m((r) => r.floor + r.logs))
    } (pocketci ${x(m((r) => (r.floor + r.logs) / r.ours))})`;
}

async function bigOutput(dir: string): Promise<string[]> {
  const { dockerFactory } = await import("../drivers/docker/factory.ts");
  const ctx = {
    namespace: "bench",
    runId: `bench-${Date.now()}`,
    runDir: dir,
    stateDir: dir,
    record: () => Promise.resolve(),
    forget: () => Promise.resolve(),
    warn: () => {},
  };
  const driver = await dockerFactory.create({}, ctx);
  const lines: string[] = [];
  try {
    // The run's network and first network holder are made by a first task, as in a pipeline, so
    // the figures below time the output and not that set-up.
    const warm = await driver.startTask({
      id: "warm-up",
      name: "warm-up",
      image: IMAGE,
      command: ["true"],
      env: {},
      mounts: [],
    }, () => {});
    await warm.wait();
    await warm.remove();
    // One 200 MB line (the engine stores it as 16 KiB pieces) and 200 MB of 100-byte lines.
    for (
      const [label, script] of [
        ["200 MB to stdout", `head -c ${BIG_BYTES} /dev/zero | tr '\\0' a`],
        [
          "200 MB to stdout in 100-byte lines",
          `yes ${"a".repeat(99)} | head -c ${BIG_BYTES}`,
        ],
      ]
    ) {
      lines.push(await outputFigure(driver, label, script));
      console.log(lines.at(-1));
    }
  } finally {
    await driver.close();
  }
  // The same task through the whole runner (live output, logs, bounded result buffers).
  await Deno.writeTextFile(
    `${dir}/big.ts`,
    `import { pipeline, task } from "pocketci";
export default pipeline("big", async () => {
  const started = performance.now();
  const r = await task("big").image(${
      JSON.stringify(IMAGE)
    }).sh("head -c ${BIG_BYTES} /dev/zero | tr '\\\\0' a");
  console.log("ELAPSED " + (performance.now() - started) + " " + r.code);
});
`,
  );
  const child = new Deno.Command(DENO, {
    args: pocketciRunArgs(`${dir}/big.ts`, [
      "--json",
      "--driver=docker",
      `--state-dir=${dir}/state`,
    ]),
    env: { NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const status = child.output();
  const peak = await peakTreeRss(child.pid, status);
  const out = await status;
  if (!out.success) {
    throw new Error(`pocketci run big failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  const mb = (n: number) => `${(n / 1e6).toFixed(0)} MB`;
  lines.push(
    `200 MB to stdout (pocketci run): peak RSS of the runner process (pipeline worker + driver) ${
      mb(peak.runner)
    } (goal < 150 MB: ${verdict(peak.runner < 150e6)}), CLI process ${
      mb(peak.cli)
    }, type-check process (before the task) ${
      mb(peak.typeCheck)
    }; largest sum of the processes alive at the same moment ${mb(peak.tree)}`,
  );
  console.log(lines.at(-1));
  return lines;
}

async function overSsh(dir: string): Promise<string[]> {
  const { startSshd } = await import("../tests/docker/sshd_fixture.ts");
  const sshd = await startSshd();
  try {
    // Interleaved rounds (4 of 5 tasks each way), so that load from elsewhere falls on both.
    const rounds = 4;
    const body = `  for (let i = 0; i < ${SSH_TASKS / rounds}; i++) await t.run("true");`;
    let local = 0;
    let remote = 0;
    for (let round = 0; round < rounds; round++) {
      local += await pocketci(dir, "ssh-local", body, "docker");
      remote += await pocketci(dir, "ssh-remote", body, `docker:host=${sshd.url}`, {
        HOME: sshd.home,
        SSH_AUTH_SOCK: "",
      });
    }
    const line = `${SSH_TASKS} sequential tasks over SSH (${sshd.url}, ${rounds} rounds): ${
      (remote / SSH_TASKS).toFixed(0)
    } ms/task vs local socket ${(local / SSH_TASKS).toFixed(0)} ms/task: ${
      ratio(remote, local)
    } (goal <= 1.3x: ${verdict(remote <= 1.3 * local)})`;
    console.log(line);
    return [line];
  } finally {
    await sshd.stop();
  }
}

/**
 * Runs every docker benchmark and prints one line per figure; returns the lines. `--only=tasks`,
 * `--only=output` or `--only=ssh` runs one group.
 */
export async function main(args: readonly string[] = []): Promise<string[]> {
  const only = args.find((a) => a.startsWith("--only="))?.slice("--only=".length);
  if (only !== undefined && !["tasks", "output", "ssh"].includes(only)) {
    throw new Error(`--only must be tasks, output or ssh, not "${only}"`);
  }
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ??
    "unknown CPU";
  const engine = (await run("docker", ["version", "--format", "{{.Server.Version}}"])).stdout
    .trim();
  console.log(
    `Machine: ${cpu}, ${navigator.hardwareConcurrency} cores; Docker Engine ${engine}; Deno ${Deno.version.deno}`,
  );
  const dir = await Deno.makeTempDir({ prefix: "pocketci-bench-docker-" });
  try {
    // Warm up: the image, the helper image and the module cache.
    await pocketci(dir, "warmup", `  await t.run("true");`, "docker");
    if (only === "tasks") return await tasks(dir);
    if (only === "output") return await bigOutput(dir);
    if (only === "ssh") return await overSsh(dir);
    return [...await tasks(dir), ...await bigOutput(dir), ...await overSsh(dir)];
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main(Deno.args);
