// `pocketci dsn` and `pocketci drivers`, run as the real entry point in a subprocess.
import assert from "node:assert/strict";
import { describeDrivers } from "../dsn/describe.ts";
import { DRIVER_NAMES, type DriverName } from "../dsn/types.ts";
import { IMPLEMENTED_DRIVERS } from "../drivers/registry.ts";
import { defaultNamespace } from "../dsn/namespace.ts";
import { parameterNames } from "../dsn/schemas.ts";

const ENTRY = new URL("../pocketci.ts", import.meta.url).pathname;
const CWD = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const TOKEN = "hz_T0KEN_must_not_leak_77";

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs pocketci with a controlled environment (HOME=/home/ci plus `env`). */
async function pocketci(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const base: Record<string, string> = { HOME: "/home/ci", PATH: Deno.env.get("PATH") ?? "" };
  // Deno needs its cache (npm:zod) where it was filled.
  base.DENO_DIR = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ENTRY, ...args],
    cwd: CWD,
    clearEnv: true,
    env: { ...base, ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function assertUsageFailure(result: Result, pattern: RegExp): void {
  assert.equal(result.code, 2, result.stderr);
  assert.equal(result.stdout, "");
  assert.equal(result.stderr.split("\n").filter((line) => line !== "").length, 1, result.stderr);
  assert.match(result.stderr, pattern);
  assert.doesNotMatch(result.stderr, /\bat .*\.ts:\d+|Error:|stack/i);
}

Deno.test("pocketci dsn --json prints exactly one JSON object with the resolved config", async () => {
  const result = await pocketci([
    "dsn",
    "--json",
    `hetzner:token=${TOKEN},labels=env=prod,app=x,location=fsn1,max_workers=3,zone=eu`,
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  assert.equal(result.stdout.trim().split("\n").length, 1);
  const json = JSON.parse(result.stdout);
  assert.deepEqual(Object.keys(json), ["driver", "namespace", "params", "config", "warnings"]);
  assert.equal(json.driver, "hetzner");
  assert.equal(json.namespace, defaultNamespace(undefined, CWD));
  assert.deepEqual(json.params, {
    token: "***",
    labels: "env=prod,app=x",
    location: "fsn1",
    max_workers: "3",
    zone: "eu",
  });
  assert.deepEqual(json.config, {
    token: "***",
    image: "docker-ce",
    server_type: "cx23",
    location: "fsn1",
    disk_size: 10,
    ssh_timeout: "5m",
    docker_timeout: "5m",
    labels: { env: "prod", app: "x" },
    max_workers: 3,
    reuse_worker: false,
    poll_interval: "10s",
    wait_timeout: "10m",
    idle_timeout: "30m",
  });
  assert.deepEqual(json.warnings, [
    'hetzner: unknown parameter "zone" is ignored (known: token, image, server_type, location, ' +
    "disk_size, ssh_timeout, docker_timeout, labels, max_workers, reuse_worker, poll_interval, " +
    "wait_timeout, idle_timeout)",
  ]);
  assert.ok(!result.stdout.includes(TOKEN));
});

Deno.test("pocketci dsn: environment variables fill parameters the DSN leaves out", async () => {
  const env = { HETZNER_TOKEN: TOKEN, HETZNER_MAX_WORKERS: "4", HETZNER_REUSE_WORKER: "true" };
  const fromEnv = JSON.parse((await pocketci(["dsn", "--json", "hetzner"], env)).stdout);
  assert.equal(fromEnv.config.max_workers, 4);
  assert.equal(fromEnv.config.reuse_worker, true);
  assert.equal(fromEnv.config.token, "***");
  const dsnWins = JSON.parse(
    (await pocketci(["dsn", "--json", "hetzner:max_workers=2,reuse_worker="], env)).stdout,
  );
  assert.equal(dsnWins.config.max_workers, 2);
  assert.equal(dsnWins.config.reuse_worker, true);
  assert.deepEqual(dsnWins.params, { max_workers: "2", reuse_worker: "" });
});

Deno.test("pocketci dsn: URL form, namespace, auto and host-dependent defaults", async () => {
  const json = JSON.parse(
    (await pocketci(
      ["dsn", "--json", "digitalocean://team-a?size=auto&tags=prod%2Cmyapp&wait_timeout=0"],
      { DIGITALOCEAN_TOKEN: TOKEN },
    )).stdout,
  );
  assert.equal(json.namespace, "team-a");
  assert.equal(json.config.size, "auto");
  assert.deepEqual(json.config.tags, ["prod", "myapp"]);
  assert.equal(json.config.wait_timeout, "0");
  assert.equal(json.config.token, "***");

  const qemu = JSON.parse((await pocketci(["dsn", "--json", "qemu"])).stdout);
  let kvm = false;
  try {
    await Deno.stat("/dev/kvm");
    kvm = true;
  } catch {
    kvm = false;
  }
  assert.equal(qemu.config.accel, Deno.build.os === "darwin" ? "hvf" : kvm ? "kvm" : "tcg");
  assert.equal(
    qemu.config.qemu_binary,
    Deno.build.arch === "aarch64" ? "qemu-system-aarch64" : "qemu-system-x86_64",
  );
  assert.equal(qemu.config.cache_dir, "/home/ci/.cache/ci/qemu");
  assert.equal(qemu.config.image, null);
});

Deno.test("pocketci dsn --pipeline derives the namespace from the pipeline path outside a repository", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-dsn-" });
  try {
    const json = JSON.parse(
      (await pocketci(["dsn", "--json", "--pipeline", `${dir}/ci.ts`, "docker"]))
        .stdout,
    );
    assert.equal(json.namespace, defaultNamespace(`${dir}/ci.ts`, CWD));
    assert.notEqual(json.namespace, defaultNamespace(undefined, CWD));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pocketci dsn prints a human explanation with the source of each value", async () => {
  const result = await pocketci(
    ["dsn", `hetzner:token=${TOKEN},max_workers=3`],
    { HETZNER_LOCATION: "hel1" },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  assert.match(result.stdout, /^driver: +hetzner$/m);
  assert.match(
    result.stdout,
    /^namespace: +ci-(?:[a-z0-9-]+-)?[0-9a-f]{10} \(default, (?:from the git remote origin|from the git repository \(it has no origin remote\)|stable per directory)\)$/m,
  );
  assert.match(result.stdout, /^params: +token=\*\*\*, max_workers=3$/m);
  assert.match(result.stdout, /^ {2}token +\*\*\* +from the DSN$/m);
  assert.match(result.stdout, /^ {2}max_workers +3 +from the DSN$/m);
  assert.match(result.stdout, /^ {2}location +hel1 +from \$HETZNER_LOCATION$/m);
  assert.match(result.stdout, /^ {2}image +docker-ce +default$/m);
  assert.ok(!result.stdout.includes(TOKEN));

  const warned = await pocketci(["dsn", "k8s://staging?region=us-east"]);
  assert.match(warned.stdout, /^namespace: +staging \(from the DSN\)$/m);
  assert.match(warned.stdout, /^warnings:\n {2}k8s: unknown parameter "region" is ignored/m);
  assert.match((await pocketci(["dsn", "native"])).stdout, /takes no parameters/);
});

Deno.test("pocketci dsn without a DSN explains POCKETCI_DRIVER, else native", async () => {
  const native = JSON.parse((await pocketci(["dsn", "--json"])).stdout);
  assert.equal(native.driver, "native");
  const fromEnv = await pocketci(["dsn", "--json"], { POCKETCI_DRIVER: "k8s://prod" });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  assert.equal(JSON.parse(fromEnv.stdout).namespace, "prod");
  const flagWins = JSON.parse(
    (await pocketci(["dsn", "--json", "docker"], { POCKETCI_DRIVER: "k8s" })).stdout,
  );
  assert.equal(flagWins.driver, "docker");
  assertUsageFailure(
    await pocketci(["dsn"], { POCKETCI_DRIVER: "podman" }),
    /^pocketci dsn: unknown driver "podman"/,
  );
});

Deno.test("pocketci dsn: a set but empty POCKETCI_DRIVER is an error, not native", async () => {
  for (const empty of ["", "  "]) {
    assertUsageFailure(
      await pocketci(["dsn"], { POCKETCI_DRIVER: empty }),
      /^pocketci dsn: \$POCKETCI_DRIVER is set but empty: set it to a driver name or unset it/,
    );
  }
  // An explicit DSN still wins over the empty variable.
  const given = await pocketci(["dsn", "--json", "docker"], { POCKETCI_DRIVER: "" });
  assert.equal(given.code, 0, given.stderr);
  assert.equal(JSON.parse(given.stdout).driver, "docker");
});

Deno.test("pocketci dsn: an unknown parameter that is no near miss stays a warning", async () => {
  const result = await pocketci(["dsn", "--json", "k8s://staging?region=us-east&timeout=300"]);
  assert.equal(result.code, 0, result.stderr);
  const known = parameterNames("k8s").join(", ");
  assert.deepEqual(JSON.parse(result.stdout).warnings, [
    `k8s: unknown parameter "region" is ignored (known: ${known})`,
    `k8s: unknown parameter "timeout" is ignored (known: ${known})`,
  ]);
});

Deno.test("pocketci dsn --help", async () => {
  const result = await pocketci(["dsn", "--help"]);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /^Usage: pocketci dsn \[DSN\] \[--json\]/);
  assert.match(result.stdout, /NAME:\/\/NAMESPACE\?key=value/);
});

const INVALID: ReadonlyArray<readonly [string[], RegExp]> = [
  [["dsn", "dockr"], /^pocketci dsn: unknown driver "dockr" \(did you mean "docker"\?\)/],
  [["dsn", "--json", "dockr"], /^pocketci dsn: unknown driver "dockr"/],
  [["dsn", "docker?x=1"], /write docker:\/\/\?x=1 or docker:x=1$/m],
  [["dsn", "k8s://Prod"], /must not contain uppercase letters/],
  [["dsn", "hetzner"], /^pocketci dsn: hetzner: token is required: .* or set HETZNER_TOKEN$/m],
  [["dsn", "docker", "k8s"], /^pocketci dsn: expected one driver string, got 2/],
  [["dsn", "--bogus", "docker"], /^pocketci dsn: unknown option --bogus; see --help$/m],
  [["dsn", "--json=yes", "docker"], /^pocketci dsn: option --json takes no value$/m],
  [["dsn", "docker", "--pipeline"], /^pocketci dsn: option --pipeline takes a value$/m],
  [["dsn", ""], /^pocketci dsn: empty driver string: give a driver name \(an empty string never/],
  [["dsn", " "], /^pocketci dsn: empty driver string/],
  [
    ["dsn", "docker:hots=unix:///var/run/docker.sock"],
    /^pocketci dsn: docker: unknown parameter "hots" \(did you mean "host"\?\): fix its name/,
  ],
  [
    ["dsn", "--json", `hetzner://ns?token=${TOKEN}&tokn=x`],
    /^pocketci dsn: hetzner: unknown parameter "tokn" \(did you mean "token"\?\)/,
  ],
];

for (const [args, pattern] of INVALID) {
  Deno.test(`pocketci ${args.join(" ")} → exit 2, one line on stderr`, async () => {
    assertUsageFailure(await pocketci(args), pattern);
  });
}

Deno.test("a token in the DSN never reaches stdout or stderr, valid or not", async () => {
  const cases: Array<[string[], Record<string, string>]> = [
    [["dsn", `hetzner:token=${TOKEN}`], {}],
    [["dsn", "--json", `hetzner:token=${TOKEN}`], {}],
    [["dsn", "--json", `hetzner://ns?token=${TOKEN}&tokn=${TOKEN}`], {}],
    [["dsn", "--json", "hetzner"], { HETZNER_TOKEN: TOKEN }],
    [["dsn", `hetzner:token=${TOKEN},max_workers=0`], {}],
    [["dsn", "--json", `hetzner:token=${TOKEN},max_workers=abc`], {}],
    [["dsn", `hetzner:token=${TOKEN},token=${TOKEN}`], {}],
    [["dsn", `hetzner?token=${TOKEN}`], {}],
    [["dsn", `hetzner:${TOKEN}`], {}],
    [["dsn", `hetzner://${TOKEN.toLowerCase()}?token=${TOKEN}`], {}],
    [["dsn", "hetzner:max_workers=0"], { HETZNER_TOKEN: TOKEN }],
    [["dsn", `--token=${TOKEN}`, "hetzner"], {}],
    [["dsn", `docker:host=ssh://me:${TOKEN}@host:22`], {}],
  ];
  let failures = 0;
  for (const [args, env] of cases) {
    const result = await pocketci(args, env);
    if (result.code !== 0) failures++;
    assert.ok(result.code === 0 || result.code === 2, `${args.join(" ")}: ${result.stderr}`);
    for (const text of [result.stdout, result.stderr]) {
      assert.ok(!text.includes(TOKEN), `${args.join(" ")} leaked: ${text}`);
      assert.ok(!text.includes(TOKEN.toLowerCase()), `${args.join(" ")} leaked: ${text}`);
    }
  }
  assert.equal(failures, 9, "the case list mixes valid and invalid driver strings");
});

Deno.test("pocketci drivers lists every driver, parameter and environment variable", async () => {
  const result = await pocketci(["drivers"]);
  assert.equal(result.code, 0, result.stderr);
  for (const driver of describeDrivers()) {
    assert.match(result.stdout, new RegExp(`^${driver.name}( \\(not implemented yet\\))?: `, "m"));
    for (const parameter of driver.parameters) {
      assert.match(result.stdout, new RegExp(`^ {2}${parameter.name} `, "m"));
      if (parameter.env) assert.ok(result.stdout.includes(parameter.env), parameter.env);
    }
  }
  for (const name of IMPLEMENTED_DRIVERS) {
    assert.match(result.stdout, new RegExp(`^${name}: \\S`, "m"));
  }
  for (const name of DRIVER_NAMES.filter((name) => !IMPLEMENTED_DRIVERS.includes(name))) {
    assert.match(result.stdout, new RegExp(`^${name} \\(not implemented yet\\): `, "m"));
  }
  assert.match(result.stdout, /^ {2}max_workers +integer ≥ 1 +1 +HETZNER_MAX_WORKERS /m);
  assert.match(result.stdout, /^ {2}token +string \(secret\) +\(required\) +FLY_API_TOKEN /m);
});

Deno.test("pocketci drivers --json is the schemas' description", async () => {
  const result = await pocketci(["drivers", "--json"]);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), {
    drivers: JSON.parse(JSON.stringify(describeDrivers())).map((driver: { name: string }) => ({
      ...driver,
      implemented: IMPLEMENTED_DRIVERS.includes(driver.name as DriverName),
    })),
  });
  const one = JSON.parse((await pocketci(["drivers", "QEMU", "--json"])).stdout);
  assert.deepEqual(one.drivers.map((driver: { name: string }) => driver.name), ["qemu"]);
});

Deno.test("pocketci drivers: bad arguments and --help", async () => {
  assertUsageFailure(
    await pocketci(["drivers", "nope"]),
    /^pocketci drivers: unknown driver "nope"; known drivers: native, docker, /,
  );
  assertUsageFailure(
    await pocketci(["drivers", "flyy"]),
    /^pocketci drivers: unknown driver "flyy" \(did you mean "fly"\?\); known drivers: native, /,
  );
  assertUsageFailure(await pocketci(["drivers", "--yaml"]), /unknown option --yaml/);
  const help = await pocketci(["drivers", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: pocketci drivers/);
});

Deno.test("a token repeated in tags=, image=, labels= or the namespace is *** in pocketci dsn, --json, warnings and errors", async () => {
  const lower = "hz-t0ken-repeated-5";
  const cases: Array<[string[], Record<string, string>]> = [
    [["dsn", `hetzner:token=${TOKEN},image=${TOKEN}`], {}],
    [["dsn", "--json", `hetzner:token=${TOKEN},image=${TOKEN},labels=a=${TOKEN}`], {}],
    [["dsn", "--json", `digitalocean:token=${TOKEN},tags=prod,${TOKEN}`], {}],
    [["dsn", `digitalocean:tags=prod,${TOKEN}`], { DIGITALOCEAN_TOKEN: TOKEN }],
    [["dsn", "--json", `hetzner://${lower}?token=${lower}`], {}],
    [["dsn", `hetzner://${lower}?token=${lower}`], {}],
    [["dsn", `hetzner:token=${TOKEN},image=${TOKEN},max_workers=${TOKEN}`], {}],
    [["dsn", "--json", `hetzner:token=${TOKEN},${TOKEN}=1`], {}],
  ];
  for (const [args, env] of cases) {
    const result = await pocketci(args, env);
    assert.ok(result.code === 0 || result.code === 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stdout + result.stderr, /\*\*\*/);
    for (const text of [result.stdout, result.stderr]) {
      for (const secret of [TOKEN, lower]) {
        assert.ok(!text.includes(secret), `${args.join(" ")} leaked: ${text}`);
      }
    }
  }
  const json = JSON.parse(
    (await pocketci(["dsn", "--json", `digitalocean:token=${TOKEN},tags=prod,${TOKEN}`])).stdout,
  );
  assert.deepEqual(json.config.tags, ["prod", "***"]);
  assert.equal(json.params.tags, "prod,***");
});
