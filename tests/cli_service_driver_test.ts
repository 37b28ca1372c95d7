// `pocketci run --service-driver=DSN` refusals (one line, exit 2, before anything runs), the flag
// in `run --help`, and `pocketci permissions --service-driver`: the union of both drivers' needs.
import assert from "node:assert/strict";
import { type CliResult, runCli } from "./helpers/cli.ts";

const HELLO = new URL("../examples/hello-world.ts", import.meta.url).pathname;

/** Runs pocketci without an inherited POCKETCI_DRIVER, with a state dir that is never made. */
function pocketci(args: string[]): Promise<CliResult> {
  const inherited = Deno.env.toObject();
  delete inherited.POCKETCI_DRIVER;
  return runCli(args, {
    clearEnv: true,
    env: { ...inherited, POCKETCI_STATE_DIR: "/nonexistent/never" },
  });
}

function assertOneLineUsageError(result: CliResult, pattern: RegExp): void {
  assert.equal(result.code, 2, result.stderr);
  assert.equal(result.stdout, "");
  assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  assert.match(result.stderr, pattern);
}

const REFUSED: readonly (readonly [string[], RegExp])[] = [
  [
    ["--service-driver=native"],
    /^pocketci run: --service-driver=native: only docker can be a service driver \(native services are host processes, which is what a native run has without the flag\); use --service-driver=docker, or drop the flag$/m,
  ],
  [
    ["--service-driver=k8s"],
    /^pocketci run: --service-driver=k8s: only docker can be a service driver \(the k8s driver runs services only as the run's --driver\)/,
  ],
  [
    ["--service-driver=dockr"],
    /^pocketci run: --service-driver: unknown driver "dockr" \(did you mean "docker"\?\); known drivers: native, docker,/,
  ],
  [
    ["--service-driver=docker:host=ftp://engine"],
    /^pocketci run: --service-driver: .*host.*must be a URL starting with unix:\/\//,
  ],
  [
    ["--service-driver="],
    /^pocketci run: --service-driver: empty driver string/,
  ],
  [
    ["--service-driver=docker:host=ssh://ci:hunter22@build.example"],
    /^pocketci run: --service-driver: the docker engine at ssh:\/\/\*\*\*@build\.example is not on this machine, so the ports it publishes on its 127\.0\.0\.1 are out of the native tasks' reach; use a local engine/,
  ],
  [
    ["--driver=docker", "--service-driver=docker"],
    /^pocketci run: --service-driver=docker with --driver=docker: the docker driver runs its own services \(tasks reach them by name\); drop --service-driver$/m,
  ],
  [
    ["--driver=qemu", "--service-driver=docker"],
    /^pocketci run: --service-driver is for --driver=native \(host processes reach the services' published ports on 127\.0\.0\.1\); qemu tasks could not reach them/,
  ],
  [
    ["--service-driver=docker://elsewhere"],
    /^pocketci run: --service-driver: the namespace "elsewhere" differs from the run's "[^"]+" \(one run has one namespace\)/,
  ],
];

for (const [flags, pattern] of REFUSED) {
  Deno.test(`pocketci run ${flags.join(" ")}: one line, exit 2`, async () => {
    const result = await pocketci(["run", HELLO, ...flags]);
    assertOneLineUsageError(result, pattern);
    assert.doesNotMatch(result.stderr, /hunter22/);
  });
}

Deno.test("pocketci run --json with a refused --service-driver ends with a run.end error event", async () => {
  const result = await pocketci(["run", "--json", HELLO, "--service-driver=native"]);
  assert.equal(result.code, 2, result.stderr);
  const end = JSON.parse(result.stdout.trim());
  assert.equal(end.type, "run.end");
  assert.match(end.error, /^--service-driver=native: only docker can be a service driver/);
});

Deno.test("pocketci run --help lists --service-driver", async () => {
  const result = await pocketci(["run", "--help"]);
  assert.equal(result.code, 0);
  assert.match(
    result.stdout,
    /^ {2}--service-driver DSN {2}start the run's services on this driver/m,
  );
});

Deno.test("pocketci permissions --service-driver=docker: the union of the native and docker needs", async () => {
  const native = JSON.parse((await pocketci(["permissions", "--json", "--driver=native"])).stdout);
  const both = await pocketci([
    "permissions",
    "--json",
    "--driver=native",
    "--service-driver=docker:host=unix:///run/test-engine.sock",
  ]);
  assert.equal(both.code, 0, both.stderr);
  const union = JSON.parse(both.stdout);
  assert.equal(union.serviceDriver, "docker");
  const read = union.permissions.find((entry: { permission: string }) =>
    entry.permission === "read"
  );
  assert.ok(read.values.includes("/run/test-engine.sock"), JSON.stringify(read));
  for (const entry of native.permissions as { permission: string; values: string[] | true }[]) {
    const merged = union.permissions.find((other: { permission: string }) =>
      other.permission === entry.permission
    );
    assert.ok(merged, `the union keeps --allow-${entry.permission}`);
    if (entry.values !== true && merged.values !== true) {
      for (const value of entry.values) assert.ok(merged.values.includes(value), value);
    }
  }
  const text = await pocketci(["permissions", "--driver=native", "--service-driver=docker"]);
  assert.match(text.stdout, /^Deno permissions for the native driver with docker services:$/m);
  assertOneLineUsageError(
    await pocketci(["permissions", "--service-driver=native"]),
    /^pocketci permissions: --service-driver=native: only docker can be a service driver/,
  );
});

Deno.test("an unreachable service driver engine: exit 2 naming --service-driver; the native driver is closed, nothing is left", async () => {
  const state = await Deno.makeTempDir({ prefix: "pocketci-service-driver-" });
  try {
    const inherited = Deno.env.toObject();
    delete inherited.POCKETCI_DRIVER;
    const result = await runCli([
      "run",
      HELLO,
      `--state-dir=${state}`,
      "--service-driver=docker:host=tcp://127.0.0.1:1",
    ], { clearEnv: true, env: { ...inherited, POCKETCI_NO_AUTO_GC: "1" } });
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /^error: cannot start the docker service driver \(--service-driver\): cannot reach the Docker engine at tcp:\/\/127\.0\.0\.1:1/m,
    );
    assert.doesNotMatch(result.stdout, /greet \|/, "no task ran");
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${state}/runs`)), [], "journal finished");
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${state}/work`)), [], "run dir removed");
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});
