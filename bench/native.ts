/**
 * Native driver benchmarks:
 * - per-task overhead: 200 sequential trivial tasks through `pocketci run` against
 *   200 spawns of the same program from a plain Deno script and from a bash loop
 *   (goal: at most 2 ms per task above a raw spawn);
 * - start-up: `pocketci run` of a one-task pipeline against `deno run` of an empty
 *   script (goal: at most 150 ms above bare `deno run`).
 *
 * Run with `deno task bench` (or `deno run -A --unstable-worker-options bench/native.ts`;
 * add `--per-task` or `--startup` for one part only). The per-task ways run interleaved in
 * rounds and are reported as medians, so that load from other work on the machine falls
 * on all of them alike.
 *
 * @module
 */

// deno-lint-ignore-file no-console

import { DENO, median, pocketciRunArgs, run } from "./common.ts";

const TASKS = 200;
const STARTUP_RUNS = 7;
const ROUNDS = 5;

/** The absolute path of `program` on PATH (not a shell builtin). */
async function which(program: string): Promise<string> {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    const path = `${dir}/${program}`;
    const info = await Deno.stat(path).catch(() => undefined);
    if (info?.isFile) return path;
  }
  throw new Error(`${program} is not on PATH`);
}

function fmt(ms: number): string {
  return `${ms.toFixed(2)} ms`;
}

/** One round of the per-task comparison, every figure in ms per task. */
interface Round {
  readonly pipeline: number;
  readonly deno: number;
  readonly bash: number;
  readonly driver: number;
  readonly runner: number;
}

async function perTask(dir: string, truePath: string): Promise<void> {
  await Deno.writeTextFile(
    `${dir}/many.ts`,
    `import { pipeline, task } from "pocketci";
export default pipeline("bench", async () => {
  const t = task("t");
  const started = performance.now();
  for (let i = 0; i < ${TASKS}; i++) await t.run(${JSON.stringify(truePath)});
  console.log("ELAPSED " + (performance.now() - started));
});
`,
  );
  await Deno.writeTextFile(
    `${dir}/spawn.ts`,
    `const started = performance.now();
for (let i = 0; i < ${TASKS}; i++) await new Deno.Command(${JSON.stringify(truePath)}).output();
console.log("ELAPSED " + (performance.now() - started));
`,
  );
  const env = { POCKETCI_STATE_DIR: `${dir}/state`, NO_COLOR: "1" };
  const rounds: Round[] = [];
  // The machine may be shared: the ways are interleaved in rounds so that load falls on
  // all of them alike, and the figures are medians over the rounds.
  for (let round = 0; round < ROUNDS; round++) {
    const pocketci = await run(DENO, pocketciRunArgs(`${dir}/many.ts`, ["--json"]), { env });
    if (pocketci.code !== 0) throw new Error(`pocketci run failed: ${pocketci.stderr}`);
    const pipelineMs = Number(/"message":"ELAPSED ([\d.]+)"/.exec(pocketci.stdout)?.[1]);
    const spawn = await run(DENO, ["run", "-A", `${dir}/spawn.ts`]);
    const denoMs = Number(/ELAPSED ([\d.]+)/.exec(spawn.stdout)?.[1]);
    const bash = await run("bash", [
      "-c",
      `s=$(date +%s%N); for i in $(seq ${TASKS}); do ${truePath}; done; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`,
    ]);
    const bashMs = Number(bash.stdout.trim()) / 1000;
    rounds.push({
      pipeline: pipelineMs / TASKS,
      deno: denoMs / TASKS,
      bash: bashMs / TASKS,
      driver: await driverOnly(`${dir}/round${round}`, truePath),
      runner: await runnerOnly(dir),
    });
  }
  const of = (pick: (round: Round) => number) => median(rounds.map(pick));
  const overhead = of((round) => round.pipeline - round.deno);
  console.log(
    `\nPer-task overhead (${TASKS} sequential runs of ${truePath}; median of ${ROUNDS} interleaved rounds)`,
  );
  console.log(`  pocketci tasks (native)   ${fmt(of((r) => r.pipeline))} per task`);
  console.log(`  Deno.Command spawns       ${fmt(of((r) => r.deno))} per spawn`);
  console.log(`  bash loop                 ${fmt(of((r) => r.bash))} per spawn`);
  console.log(`  native driver alone       ${fmt(of((r) => r.driver))} per task (no runner)`);
  console.log(`  runner alone              ${fmt(of((r) => r.runner))} per task (instant driver)`);
  console.log(
    `  overhead above Deno spawn ${fmt(overhead)} per task (goal <= 2 ms: ${
      overhead <= 2 ? "met" : "MISSED"
    }); ratio ${of((r) => r.pipeline / r.deno).toFixed(2)}x Deno, ${
      of((r) => r.pipeline / r.bash).toFixed(2)
    }x bash; driver alone ${of((r) => r.driver / r.deno).toFixed(2)}x Deno`,
  );
  console.log("  rounds (pipeline / Deno / bash / driver / runner, ms per task):");
  for (const round of rounds) {
    console.log(
      `    ${
        [round.pipeline, round.deno, round.bash, round.driver, round.runner].map((ms) =>
          ms.toFixed(2)
        ).join(" / ")
      }`,
    );
  }
}

/** Per-task cost of the native driver alone (no runner, no worker). */
async function driverOnly(dir: string, truePath: string): Promise<number> {
  const { nativeFactory } = await import("../drivers/native/factory.ts");
  const runDir = `${dir}/driver-only`;
  await Deno.mkdir(runDir, { recursive: true });
  const driver = await nativeFactory.create({}, {
    namespace: "bench",
    runId: "bench",
    runDir,
    stateDir: `${dir}/driver-state`,
    record: () => Promise.resolve(),
    forget: () => Promise.resolve(),
    warn: () => {},
  });
  const started = performance.now();
  for (let i = 0; i < TASKS; i++) {
    const handle = await driver.startTask(
      { id: `t${i}`, name: "t", command: [truePath], env: {}, mounts: [] },
      () => {},
    );
    await handle.wait();
    await handle.remove();
  }
  const ms = (performance.now() - started) / TASKS;
  await driver.close();
  return ms;
}

/** Per-task cost of the runner alone: the real runner and Worker with an instant driver. */
async function runnerOnly(dir: string): Promise<number> {
  const { PipelineRun } = await import("../runner/run.ts");
  const { NATIVE_CAPABILITIES } = await import("../drivers/native/factory.ts");
  const { NO_PERMISSIONS } = await import("../runner/pipeline_process.ts");
  type Driver = import("../drivers/contract.ts").Driver;
  const unused = () => Promise.reject(new Error("not used by the benchmark"));
  const driver: Driver = {
    name: "native",
    capabilities: NATIVE_CAPABILITIES,
    startTask: (spec) =>
      Promise.resolve({
        id: spec.id,
        wait: () => Promise.resolve({ code: 0 }),
        stop: () => Promise.resolve(),
        remove: () => Promise.resolve(),
      }),
    attachTask: () => Promise.resolve(undefined),
    createVolume: unused,
    removeVolume: unused,
    putArchive: unused,
    getArchive: unused,
    startSandbox: unused,
    close: () => Promise.resolve({ removed: [], failed: [] }),
  };
  let output = "";
  const run = new PipelineRun({
    pipelinePath: `${dir}/many.ts`,
    dsn: {
      driver: "native",
      namespace: "bench",
      namespaceFromDsn: false,
      params: {},
      config: {},
      warnings: [],
    },
    factory: {
      name: "native",
      capabilities: () => NATIVE_CAPABILITIES,
      permissions: () => [],
      create: () => Promise.resolve(driver),
    },
    runId: `bench${Date.now()}`,
    args: [],
    secrets: new Map(),
    stateDir: `${dir}/runner-state`,
    permissions: NO_PERMISSIONS,
    reporters: [{ event: (event) => event.type === "log" && (output += event.message) }],
  });
  await run.start();
  return Number(/ELAPSED ([\d.]+)/.exec(output)?.[1]) / TASKS;
}

async function startup(dir: string, truePath: string): Promise<void> {
  await Deno.writeTextFile(`${dir}/empty.ts`, "");
  await Deno.writeTextFile(
    `${dir}/one.ts`,
    `import { pipeline, task } from "pocketci";
export default pipeline("one", async () => { await task("t").run(${JSON.stringify(truePath)}); });
`,
  );
  const env = { POCKETCI_STATE_DIR: `${dir}/state`, NO_COLOR: "1" };
  const pocketciArgs = (extra: string[]) => pocketciRunArgs(`${dir}/one.ts`, extra);
  // Warm the module and type-check caches once.
  await run(DENO, pocketciArgs([]), { env });
  await run(DENO, ["run", `${dir}/empty.ts`]);
  const bare: number[] = [];
  const checked: number[] = [];
  const unchecked: number[] = [];
  const inProcess: number[] = [];
  for (let i = 0; i < STARTUP_RUNS; i++) {
    bare.push((await run(DENO, ["run", `${dir}/empty.ts`])).ms);
    const withCheck = await run(DENO, pocketciArgs([]), { env });
    if (withCheck.code !== 0) throw new Error(`pocketci run failed: ${withCheck.stderr}`);
    checked.push(withCheck.ms);
    unchecked.push((await run(DENO, pocketciArgs(["--no-check"]), { env })).ms);
    inProcess.push((await run(DENO, pocketciArgs(["--no-check", "--in-process"]), { env })).ms);
  }
  const base = median(bare);
  console.log(`\nStart-up (median of ${STARTUP_RUNS}; one-task pipeline)`);
  console.log(`  deno run empty.ts                         ${fmt(base)}`);
  for (
    const [label, values] of [
      ["pocketci run (type-check, narrowed child)", checked],
      ["pocketci run --no-check                  ", unchecked],
      ["pocketci run --no-check --in-process     ", inProcess],
    ] as const
  ) {
    const ms = median(values);
    console.log(
      `  ${label} ${fmt(ms)}  (+${fmt(ms - base)}, ${(ms / base).toFixed(2)}x; goal +150 ms: ${
        ms - base <= 150 ? "met" : "MISSED"
      })`,
    );
  }
}

if (import.meta.main) {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-bench-" });
  try {
    const truePath = await which("true");
    // `--per-task` or `--startup` runs one part only.
    const only = Deno.args.find((arg) => arg === "--per-task" || arg === "--startup");
    if (only !== "--startup") await perTask(dir, truePath);
    if (only !== "--per-task") await startup(dir, truePath);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
