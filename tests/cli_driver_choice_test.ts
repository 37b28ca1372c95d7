// Which driver `pocketci run` and `pocketci permissions` use when the driver is given empty,
// and what `run` says when a driver cannot start.
import assert from "node:assert/strict";
import { type CliResult, runCli } from "./helpers/cli.ts";
import { IMPLEMENTED_DRIVERS } from "../drivers/registry.ts";

const HELLO = new URL("../examples/hello-world.ts", import.meta.url).pathname;

/** Runs pocketci without an inherited POCKETCI_DRIVER unless `env` sets one. */
function pocketci(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const inherited = Deno.env.toObject();
  delete inherited.POCKETCI_DRIVER;
  return runCli(args, { clearEnv: true, env: { ...inherited, ...env } });
}

function assertOneLineUsageError(result: CliResult, pattern: RegExp): void {
  assert.equal(result.code, 2, result.stderr);
  assert.equal(result.stdout, "");
  assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  assert.match(result.stderr, pattern);
}

for (const args of [["--driver="], ["--driver", ""], ["--driver= "]]) {
  Deno.test(`pocketci run ${JSON.stringify(args)} is an error, never native`, async () => {
    assertOneLineUsageError(
      await pocketci(["run", HELLO, ...args]),
      /^pocketci run: --driver: empty driver string: give a driver name \(an empty string never means native\)/,
    );
  });
}

Deno.test("pocketci run with POCKETCI_DRIVER set but empty is an error, never native", async () => {
  for (const empty of ["", " "]) {
    assertOneLineUsageError(
      await pocketci(["run", HELLO, "--state-dir", "/nonexistent/never"], {
        POCKETCI_DRIVER: empty,
      }),
      /^pocketci run: \$POCKETCI_DRIVER is set but empty: set it to a driver name or unset it \(an empty value never means native\); known drivers: native, /,
    );
  }
});

Deno.test("pocketci permissions with an empty driver is an error, never native", async () => {
  assertOneLineUsageError(
    await pocketci(["permissions", "--driver="]),
    /^pocketci permissions: empty driver string: give a driver name/,
  );
  assertOneLineUsageError(
    await pocketci(["permissions"], { POCKETCI_DRIVER: "" }),
    /^pocketci permissions: \$POCKETCI_DRIVER is set but empty/,
  );
});

Deno.test("pocketci run --driver=vz on a host that is not macOS: one line saying it needs macOS, exit 2", async () => {
  if (Deno.build.os === "darwin") return;
  const result = await pocketci(["run", HELLO, "--driver=vz"]);
  assert.equal(result.stdout, "");
  assertOneLineUsageError(
    result,
    new RegExp(
      `^pocketci run: the vz driver needs macOS \\(Apple Virtualization\\.framework\\) and this host runs ${Deno.build.os}; use --driver=qemu or --driver=docker here$`,
      "m",
    ),
  );
  assert.doesNotMatch(result.stderr, /Failed to resolve|Info/);
});

Deno.test("pocketci run --driver=k8s without a kubeconfig: the driver's one error line, exit 2, no Node or Deno noise", async () => {
  const home = await Deno.makeTempDir();
  try {
    const result = await pocketci(["run", HELLO, "--driver=k8s"], { HOME: home, KUBECONFIG: "" });
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stdout, "");
    assert.match(
      result.stderr,
      /^error: cannot start the k8s driver: no kubeconfig found .*pass --driver=k8s:kubeconfig=PATH or set KUBECONFIG$/m,
    );
    assert.doesNotMatch(result.stderr, /DeprecationWarning|punycode|Failed to resolve|Info/);
    assert.ok(IMPLEMENTED_DRIVERS.includes("k8s"));
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
