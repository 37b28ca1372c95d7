/**
 * k8s driver benchmark (issue 11), against the fake API server of `tests/fakes/kube` (pods on the
 * local dockerd, so both sides pay the same container costs): 20 sequential trivial tasks
 * (`true`) through `pocketci run --driver=k8s`, against 20 `kubectl run --rm -i
 * --restart=Never busybox -- true` from a loop against the same server. Goal: <= 0.8x.
 *
 * Run with `deno task bench` or `deno run -A --unstable-worker-options bench/k8s.ts`.
 *
 * @module
 */

// deno-lint-ignore-file no-console

import { DENO, pocketciRunArgs, run } from "./common.ts";
import { startFakeKube } from "../tests/fakes/kube/server.ts";

const IMAGE = "busybox:latest";
const TASKS = 20;

if (import.meta.main) {
  const kube = await startFakeKube();
  const dir = await Deno.makeTempDir({ prefix: "pocketci-bench-k8s-" });
  try {
    await Deno.writeTextFile(
      `${dir}/seq.ts`,
      `import { pipeline, task } from "pocketci";
export default pipeline("seq", async () => {
  const started = performance.now();
  for (let i = 0; i < ${TASKS}; i++) await task("t" + i).image(${
        JSON.stringify(IMAGE)
      }).run("true");
  console.log("ELAPSED " + (performance.now() - started));
});
`,
    );
    const env = { NO_COLOR: "1", KUBECONFIG: kube.kubeconfig, HOME: dir };
    const result = await run(
      DENO,
      pocketciRunArgs(`${dir}/seq.ts`, [
        "--json",
        "--driver=k8s:namespace=default",
        `--state-dir=${dir}/state`,
      ]),
      { env },
    );
    if (result.code !== 0) {
      throw new Error(`pocketci run failed: ${result.stderr}${result.stdout.slice(-2000)}`);
    }
    const driverMs = Number(/"message":"ELAPSED ([\d.]+)/.exec(result.stdout)?.[1]);
    const started = performance.now();
    for (let i = 0; i < TASKS; i++) {
      const out = await run("kubectl", [
        "run",
        `bench-${i}`,
        "--rm",
        "-i",
        "--restart=Never",
        `--image=${IMAGE}`,
        "--image-pull-policy=IfNotPresent",
        "--",
        "true",
      ], { env: { KUBECONFIG: kube.kubeconfig, HOME: dir, PATH: Deno.env.get("PATH") ?? "" } });
      if (out.code !== 0) throw new Error(`kubectl run failed: ${out.stderr}`);
    }
    const kubectlMs = performance.now() - started;
    const ratio = driverMs / kubectlMs;
    console.log(
      `k8s: ${TASKS} sequential tasks: pocketci ${(driverMs / 1000).toFixed(2)} s ` +
        `(${(driverMs / TASKS).toFixed(0)} ms/task), kubectl run --rm -i ${
          (kubectlMs / 1000).toFixed(2)
        } s (${(kubectlMs / TASKS).toFixed(0)} ms/task): ${ratio.toFixed(2)}x (goal <= 0.8x: ${
          ratio <= 0.8 ? "met" : "MISSED"
        })`,
    );
  } finally {
    await kube.close();
    await Deno.remove(dir, { recursive: true });
  }
}
