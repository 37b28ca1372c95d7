/**
 * DigitalOcean and Hetzner driver benchmark (issue 10), against the fakes of `tests/fakes/cloud`
 * (machines are sshd on loopback forwarding the local engine, so both sides pay the same
 * container costs): the first task of a run on a parked machine (claim, SSH, Docker check, task)
 * against the same first task on the local docker driver, side by side in alternating runs.
 * Goal: <= 1.5x plus the SSH connect (the connect time is taken from the run's own
 * `ready in ... (SSH ...)` progress line). Also the API requests each reused run makes
 * (goal: <= 10).
 *
 * Run with `deno task bench` or `deno run -A --unstable-worker-options bench/machines.ts`.
 *
 * @module
 */

// deno-lint-ignore-file no-console

import { DENO, median, pocketciRunArgs, run } from "./common.ts";
import { FakeDigitalOcean } from "../tests/fakes/cloud/digitalocean.ts";
import { FakeHetzner } from "../tests/fakes/cloud/hetzner.ts";
import type { FakeCloud } from "../tests/fakes/cloud/fake_server.ts";

const IMAGE = "busybox:latest";
const RUNS = 5;

/** Milliseconds of a duration as the progress lines print it (`850ms`, `1.2s`, `1m 3s`). */
function parseMs(text: string): number {
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/([\d.]+)(ms|s|m|h)/g)) {
    total += Number(amount) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[unit]!;
  }
  return total;
}

interface RunFigures {
  /** The first task, provisioning included (ms). */
  readonly firstTaskMs: number;
  /** The SSH connect of a claimed machine (ms), when the run printed it. */
  readonly sshMs?: number;
}

async function runOnce(
  dir: string,
  driver: string,
  env: Record<string, string>,
): Promise<RunFigures> {
  const result = await run(
    DENO,
    pocketciRunArgs(`${dir}/first.ts`, [
      "--json",
      `--driver=${driver}`,
      `--state-dir=${dir}/state`,
    ]),
    { env: { NO_COLOR: "1", ...env } },
  );
  if (result.code !== 0) {
    throw new Error(`pocketci run failed (${result.code}): ${result.stderr}${result.stdout}`);
  }
  const firstTaskMs = Number(/"message":"ELAPSED ([\d.]+)/.exec(result.stdout)?.[1]);
  if (!Number.isFinite(firstTaskMs)) throw new Error(`no ELAPSED in: ${result.stdout}`);
  const ssh = /ready in [^(]*\(SSH ([^,]+),/.exec(result.stdout)?.[1];
  return { firstTaskMs, ...(ssh ? { sshMs: parseMs(ssh) } : {}) };
}

async function bench(kind: "digitalocean" | "hetzner", fake: FakeCloud): Promise<boolean> {
  const dir = await Deno.makeTempDir({ prefix: `pocketci-bench-${kind}-` });
  const urlEnv = kind === "digitalocean" ? "DIGITALOCEAN_API_URL" : "HETZNER_API_URL";
  const env = { [urlEnv]: fake.url };
  const reuse = `${kind}:token=${fake.token},reuse_worker=true`;
  try {
    await Deno.writeTextFile(
      `${dir}/first.ts`,
      `import { pipeline, task } from "pocketci";
export default pipeline("first", async () => {
  const started = performance.now();
  await task("first").image(${JSON.stringify(IMAGE)}).run("true");
  console.log("ELAPSED " + (performance.now() - started));
});
`,
    );
    await runOnce(dir, reuse, env); // creates the machine and parks it
    const machine: RunFigures[] = [];
    const docker: RunFigures[] = [];
    const requests: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const before = fake.requests.length;
      machine.push(await runOnce(dir, reuse, env));
      requests.push(fake.requests.length - before);
      docker.push(await runOnce(dir, "docker", {}));
    }
    // The last run does not reuse: it claims the parked machine and deletes it with the key.
    await runOnce(dir, `${kind}:token=${fake.token}`, env);
    const machineMs = median(machine.map((r) => r.firstTaskMs));
    const sshMs = median(machine.map((r) => r.sshMs ?? 0));
    const dockerMs = median(docker.map((r) => r.firstTaskMs));
    const ratio = (machineMs - sshMs) / dockerMs;
    const perRun = Math.max(...requests);
    console.log(
      `${kind}: first task on a parked machine ${machineMs.toFixed(0)} ms (SSH connect ${
        sshMs.toFixed(0)
      } ms), on the local docker driver ${dockerMs.toFixed(0)} ms: ${
        ratio.toFixed(2)
      }x plus the SSH connect (goal <= 1.5x: ${
        ratio <= 1.5 ? "met" : "MISSED"
      }); API requests per reused run: ${requests.join(", ")} (goal <= 10: ${
        perRun <= 10 ? "met" : "MISSED"
      })`,
    );
    return true;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  for (const kind of ["hetzner", "digitalocean"] as const) {
    const fake = kind === "digitalocean" ? new FakeDigitalOcean() : new FakeHetzner();
    try {
      await bench(kind, fake);
    } finally {
      await fake.close();
    }
  }
}
