/**
 * `deno task bench`: runs bench/native.ts and, when present, bench/docker.ts, bench/qemu.ts,
 * bench/k8s.ts and bench/machines.ts,
 * each in its own process.
 *
 * @module
 */

// deno-lint-ignore-file no-console

const BENCHES = ["native.ts", "docker.ts", "qemu.ts", "k8s.ts", "machines.ts"];

if (import.meta.main) {
  let failed = false;
  for (const name of BENCHES) {
    const path = new URL(`./${name}`, import.meta.url).pathname;
    try {
      await Deno.stat(path);
    } catch {
      continue;
    }
    console.log(`== bench/${name}`);
    const status = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-worker-options", path, ...Deno.args],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!status.success) {
      console.error(`bench/${name} failed with exit code ${status.code}`);
      failed = true;
    }
  }
  Deno.exit(failed ? 1 : 0);
}
