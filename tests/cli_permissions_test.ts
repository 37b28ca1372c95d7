// `pocketci permissions`, run as the real entry point in a subprocess.
import assert from "node:assert/strict";
import { type CliResult, runCli } from "./helpers/cli.ts";

/** Runs `pocketci permissions ARGS...` with a fixed HOME and no inherited environment. */
function pocketci(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(["permissions", ...args], {
    clearEnv: true,
    env: {
      HOME: "/home/ci",
      PATH: Deno.env.get("PATH") ?? "",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
      ...env,
    },
  });
}

Deno.test("pocketci permissions prints native's flags with reasons (default driver)", async () => {
  const result = await pocketci([], { POCKETCI_STATE_DIR: "/var/pci" });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^Deno permissions for the native driver:/);
  assert.match(result.stdout, /\n {2}--allow-run\n {6}tasks are host programs/);
  const pathDirs = (Deno.env.get("PATH") ?? "").split(":").filter((dir) => dir.startsWith("/"));
  const read = [...new Set(["/var/pci", ...pathDirs, "/usr/bin/setsid", "/bin/setsid"])].join(",");
  assert.ok(
    result.stdout.includes(
      `\nFlags: --allow-read=${read} --allow-write=/var/pci --allow-net=127.0.0.1 --allow-env=PATH,HOME --allow-run\n`,
    ),
    result.stdout,
  );
});

Deno.test("pocketci permissions --json for the k8s driver", async () => {
  const result = await pocketci(["--driver=k8s://prod?kubeconfig=/etc/k8s/config", "--json"]);
  assert.equal(result.code, 0, result.stderr);
  const parsed = JSON.parse(result.stdout);
  assert.equal(parsed.driver, "k8s");
  assert.equal(parsed.implemented, true);
  assert.deepEqual(parsed.flags, ["--allow-read=/etc/k8s/config", "--allow-env"]);
  assert.ok(parsed.permissions.every((entry: { reasons: string[] }) => entry.reasons.length > 0));
});

Deno.test("pocketci permissions takes the driver from POCKETCI_DRIVER and never prints a secret", async () => {
  const result = await pocketci([], { POCKETCI_DRIVER: "hetzner:token=sekrit_value_123" });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /hetzner driver/);
  assert.ok(!result.stdout.includes("sekrit_value_123"));
});

Deno.test("pocketci permissions rejects a bad DSN or flag with exit code 2", async () => {
  const bad = await pocketci(["--driver=nope"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^pocketci permissions: unknown driver "nope"/);
  assert.equal(bad.stdout, "");
  const flag = await pocketci(["--bogus"]);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /unknown option --bogus/);
  const help = await pocketci(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: pocketci permissions/);
});
