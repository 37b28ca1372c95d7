import assert from "node:assert/strict";
import { describeDrivers } from "./describe.ts";
import { defaultNamespace } from "./namespace.ts";
import { driverStringFrom, resolveDsn, type ResolveOptions } from "./resolve.ts";
import { DRIVER_NAMES, DsnError, type ParameterDescription, type ResolvedDsn } from "./types.ts";

const HOST = { os: "linux", arch: "x86_64", kvm: true } as const;
const TOKENS = { DIGITALOCEAN_TOKEN: "dop_env", HETZNER_TOKEN: "hz_env", FLY_API_TOKEN: "fo1_env" };

function resolve(dsn: string, env: Record<string, string> = {}, extra: ResolveOptions = {}) {
  return resolveDsn(dsn, {
    env: { HOME: "/home/ci", ...env },
    cwd: "/work/p",
    host: HOST,
    ...extra,
  });
}

function assertDsnError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof DsnError, String(error));
    assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
}

// The defaults of every driver, as the spec's tables give them.
const SPEC_DEFAULTS: Record<string, Record<string, unknown>> = {
  native: {},
  docker: { host: "unix:///var/run/docker.sock" },
  k8s: {
    namespace: "default",
    kubeconfig: "/home/ci/.kube/config",
    start_timeout: "5m",
    storage_class: null,
    volume_size: "1Gi",
    create_namespace: false,
  },
  digitalocean: {
    token: "dop_env",
    image: "docker-20-04",
    size: "s-1vcpu-1gb",
    region: "nyc3",
    disk_size: 25,
    tags: [],
    max_workers: 1,
    reuse_worker: false,
    poll_interval: "10s",
    wait_timeout: "10m",
    idle_timeout: "30m",
    ssh_timeout: "5m",
    docker_timeout: "5m",
  },
  hetzner: {
    token: "hz_env",
    image: "docker-ce",
    server_type: "cx23",
    location: "nbg1",
    disk_size: 10,
    ssh_timeout: "5m",
    docker_timeout: "5m",
    labels: {},
    max_workers: 1,
    reuse_worker: false,
    poll_interval: "10s",
    wait_timeout: "10m",
    idle_timeout: "30m",
  },
  fly: { token: "fo1_env", app: null, region: null, org: "personal", size: "shared-cpu-1x" },
  qemu: {
    memory: 2048,
    cpus: 2,
    accel: "kvm",
    qemu_binary: "qemu-system-x86_64",
    cache_dir: "/home/ci/.cache/ci/qemu",
    image: null,
    boot_timeout: "5m",
    kernel: null,
    initrd: null,
    append: null,
    ssh_key: null,
  },
  vz: { memory: 2048, cpus: 2, cache_dir: "/home/ci/.cache/ci/vz", image: null },
};

for (const driver of DRIVER_NAMES) {
  Deno.test(`${driver}: the complete default config is the spec's`, () => {
    const resolved = resolve(driver, TOKENS);
    assert.deepEqual(resolved.config, SPEC_DEFAULTS[driver]);
    assert.deepEqual(resolved.params, {});
    assert.deepEqual(resolved.warnings, []);
  });
}

// Two valid raw values per parameter and what they become in config.
function samples(parameter: ParameterDescription): [[string, unknown], [string, unknown]] {
  switch (parameter.type) {
    case "integer": {
      const min = parameter.min ?? 0;
      return [[String(min + 1), min + 1], [String(min + 2), min + 2]];
    }
    case "boolean":
      return [["true", true], ["false", false]];
    case "duration":
      return [["7s", "7s"], ["1h30m", "1h30m"]];
    case "enum":
      return [[parameter.values![0], parameter.values![0]], [
        parameter.values![2],
        parameter.values![2],
      ]];
    case "path":
      return [["/a/x", "/a/x"], ["~/y", "/home/ci/y"]];
    case "url":
      return [["tcp://a:2375", "tcp://a:2375"], ["ssh://me@b", "ssh://me@b"]];
    case "list":
      return [["a, b", ["a", "b"]], ["c", ["c"]]];
    case "map":
      return [["k=v", { k: "v" }], ["a=b,c=", { a: "b", c: "" }]];
    case "dns-label":
      return [["ns-one", "ns-one"], ["ns-two", "ns-two"]];
    default:
      return [["one", "one"], ["two", "two"]];
  }
}

for (const driver of describeDrivers()) {
  for (const parameter of driver.parameters) {
    const [[dsnRaw, dsnValue], [envRaw, envValue]] = samples(parameter);
    const name = `${driver.name}.${parameter.name}`;
    const base = parameter.secret ? {} : TOKENS;
    const dsnFor = (raw: string) =>
      `${driver.name}://?${parameter.name}=${encodeURIComponent(raw)}`;

    Deno.test(`precedence ${name}: a DSN parameter wins`, () => {
      const env = parameter.env ? { ...base, [parameter.env]: envRaw } : base;
      const resolved = resolve(dsnFor(dsnRaw), env);
      assert.deepEqual(resolved.config[parameter.name], dsnValue);
      assert.equal(resolved.sources?.[parameter.name], "dsn");
    });

    if (parameter.env !== null) {
      const env = parameter.env;
      Deno.test(`precedence ${name}: ${env} applies when the DSN omits it or leaves it empty`, () => {
        for (const dsn of [driver.name, `${driver.name}:${parameter.name}=`]) {
          const resolved = resolve(dsn, { ...base, [env]: envRaw });
          assert.deepEqual(resolved.config[parameter.name], envValue, dsn);
          assert.equal(resolved.sources?.[parameter.name], "env");
        }
      });
      if (!parameter.required) {
        Deno.test(`precedence ${name}: an empty ${env} means the default`, () => {
          const resolved = resolve(driver.name, { ...base, [env]: "" });
          assert.deepEqual(
            resolved.config[parameter.name],
            SPEC_DEFAULTS[driver.name][parameter.name],
          );
          assert.equal(resolved.sources?.[parameter.name], "default");
        });
      }
    }
  }
}

Deno.test("docker host: DSN, then DOCKER_HOST, then the local socket", () => {
  const env = { DOCKER_HOST: "tcp://remote:2375" };
  assert.equal(resolve("docker:host=ssh://me@ci:22", env).config.host, "ssh://me@ci:22");
  assert.equal(resolve("docker", env).config.host, "tcp://remote:2375");
  assert.equal(resolve("docker:host=", env).config.host, "tcp://remote:2375");
  assert.equal(resolve("docker").config.host, "unix:///var/run/docker.sock");
});

Deno.test("k8s kubeconfig: DSN, then KUBECONFIG, then ~/.kube/config, with ~ expanded", () => {
  assert.equal(
    resolve("k8s:kubeconfig=~/k", { KUBECONFIG: "/env/k" }).config.kubeconfig,
    "/home/ci/k",
  );
  assert.equal(resolve("k8s", { KUBECONFIG: "/env/k" }).config.kubeconfig, "/env/k");
  assert.equal(resolve("k8s").config.kubeconfig, "/home/ci/.kube/config");
  assert.equal(resolve("k8s", { HOME: "/root/" }).config.kubeconfig, "/root/.kube/config");
});

Deno.test("k8s namespace: parameter, else URL authority, else default", () => {
  const both = resolve("k8s://grouping?namespace=pods");
  assert.equal(both.namespace, "grouping");
  assert.equal(both.config.namespace, "pods");
  assert.equal(resolve("k8s://grouping").config.namespace, "grouping");
  assert.equal(resolve("k8s://grouping").sources?.namespace, "dsn");
  assert.equal(resolve("k8s").config.namespace, "default");
  assert.equal(resolve("k8s").sources?.namespace, "default");
});

Deno.test("qemu accel and binary follow the host", () => {
  const cases: Array<[ResolveOptions["host"], string, string]> = [
    [{ os: "linux", arch: "x86_64", kvm: true }, "kvm", "qemu-system-x86_64"],
    [{ os: "linux", arch: "x86_64", kvm: false }, "tcg", "qemu-system-x86_64"],
    [{ os: "darwin", arch: "aarch64", kvm: false }, "hvf", "qemu-system-aarch64"],
    [{ os: "windows", arch: "x86_64", kvm: false }, "tcg", "qemu-system-x86_64"],
    [{ os: "linux", arch: "aarch64", kvm: true }, "kvm", "qemu-system-aarch64"],
  ];
  for (const [host, accel, binary] of cases) {
    const resolved = resolve("qemu", {}, { host });
    assert.equal(resolved.config.accel, accel, JSON.stringify(host));
    assert.equal(resolved.config.qemu_binary, binary, JSON.stringify(host));
    assert.equal(resolve("qemu:accel=tcg", {}, { host }).config.accel, "tcg");
  }
});

Deno.test("qemu defaults read this host when no host is given", () => {
  let kvm = false;
  try {
    Deno.statSync("/dev/kvm");
    kvm = true;
  } catch {
    kvm = false;
  }
  const expected = Deno.build.os === "darwin"
    ? "hvf"
    : Deno.build.os === "linux" && kvm
    ? "kvm"
    : "tcg";
  const resolved = resolveDsn("qemu", { env: { HOME: "/h" }, cwd: "/" });
  assert.equal(resolved.config.accel, expected);
  assert.equal(
    resolved.config.qemu_binary,
    Deno.build.arch === "aarch64" ? "qemu-system-aarch64" : "qemu-system-x86_64",
  );
});

Deno.test("qemu warns when the chosen accel cannot work on this host", () => {
  assert.match(resolve("qemu:accel=hvf").warnings[0], /^qemu: accel hvf needs macOS/);
  const noKvm = { os: "linux", arch: "x86_64", kvm: false };
  assert.match(
    resolve("qemu:accel=kvm", {}, { host: noKvm }).warnings[0],
    /needs Linux with \/dev\/kvm/,
  );
  assert.deepEqual(resolve("qemu:accel=kvm").warnings, []);
});

Deno.test("~ is expanded in paths from the DSN, the environment and defaults", () => {
  assert.equal(resolve("qemu:cache_dir=~/c").config.cache_dir, "/home/ci/c");
  assert.equal(resolve("qemu", { QEMU_CACHE_DIR: "~/e" }).config.cache_dir, "/home/ci/e");
  assert.equal(resolve("vz:image=~").config.image, "/home/ci");
  assert.equal(resolve("vz:image=~other/x").config.image, "~other/x");
  assert.equal(resolve("qemu:qemu_binary=~/bin/q").config.qemu_binary, "/home/ci/bin/q");
});

Deno.test("namespace: URL authority, else ci- + a stable hash of the pipeline path", () => {
  const fromUrl = resolve("docker://team-a");
  assert.equal(fromUrl.namespace, "team-a");
  assert.equal(fromUrl.namespaceFromDsn, true);
  const emptyAuthority = resolve("docker://?host=tcp://x:1");
  assert.equal(emptyAuthority.namespaceFromDsn, false);

  const a = resolveDsn("docker", { env: {}, pipelinePath: "ci.ts", cwd: "/repo" });
  assert.match(a.namespace, /^ci-[0-9a-f]{10}$/);
  assert.equal(a.namespaceFromDsn, false);
  const same = [
    resolveDsn("docker", { env: {}, pipelinePath: "/repo/ci.ts", cwd: "/elsewhere" }),
    resolveDsn("docker", { env: {}, pipelinePath: "./sub/../ci.ts", cwd: "/repo" }),
    resolveDsn("hetzner:token=t", { env: {}, pipelinePath: "ci.ts", cwd: "/repo/" }),
  ];
  for (const other of same) assert.equal(other.namespace, a.namespace);
  const other = resolveDsn("docker", { env: {}, pipelinePath: "other.ts", cwd: "/repo" });
  assert.notEqual(other.namespace, a.namespace);
  const noPipeline = resolveDsn("docker", { env: {}, cwd: "/repo" });
  assert.notEqual(noPipeline.namespace, a.namespace);
  assert.equal(noPipeline.namespace, defaultNamespace(undefined, "/repo"));
  assert.equal(resolveDsn("docker", { env: {}, cwd: "/repo" }).namespace, noPipeline.namespace);
});

Deno.test("namespace without cwd uses the process's current directory", () => {
  assert.equal(
    resolveDsn("docker", { env: {} }).namespace,
    defaultNamespace(undefined, Deno.cwd()),
  );
});

Deno.test("env defaults to the process environment", () => {
  const name = "HETZNER_LOCATION";
  const previous = Deno.env.get(name);
  Deno.env.set(name, "hel1");
  try {
    assert.equal(resolveDsn("hetzner:token=t").config.location, "hel1");
  } finally {
    if (previous === undefined) Deno.env.delete(name);
    else Deno.env.set(name, previous);
  }
});

const ERRORS: ReadonlyArray<readonly [string, Record<string, string>, RegExp]> = [
  [
    "hetzner",
    {},
    /^hetzner: token is required: add token=\.\.\. to the DSN \(hetzner:token=\.\.\.\) or set HETZNER_TOKEN$/,
  ],
  ["hetzner:token=", { HETZNER_TOKEN: "" }, /^hetzner: token is required/],
  ["digitalocean", {}, /^digitalocean: token is required.* or set DIGITALOCEAN_TOKEN$/],
  ["fly", {}, /^fly: token is required.* or set FLY_API_TOKEN$/],
  [
    "hetzner:max_workers=0",
    TOKENS,
    /^hetzner: max_workers must be an integer ≥ 1, got "0" \(from the DSN\)$/,
  ],
  ["hetzner:max_workers=-1", TOKENS, /^hetzner: max_workers must be an integer ≥ 1, got "-1"/],
  ["hetzner:max_workers=1.5", TOKENS, /max_workers must be an integer ≥ 1, got "1.5"/],
  ["hetzner:max_workers=three", TOKENS, /max_workers must be an integer ≥ 1, got "three"/],
  ["hetzner:max_workers= 3", TOKENS, /max_workers must be an integer ≥ 1, got " 3"/],
  ["hetzner:max_workers=20000", TOKENS, /max_workers must be at most 10000, got "20000"/],
  [
    "hetzner",
    { ...TOKENS, HETZNER_MAX_WORKERS: "0" },
    /max_workers must be an integer ≥ 1, got "0" \(from \$HETZNER_MAX_WORKERS\)$/,
  ],
  ["digitalocean:disk_size=0", TOKENS, /^digitalocean: disk_size must be an integer ≥ 1, got "0"/],
  ["digitalocean:disk_size=99999", TOKENS, /disk_size must be at most 16384/],
  ["qemu:memory=100", {}, /^qemu: memory must be an integer ≥ 256, got "100"/],
  ["vz:cpus=0", {}, /^vz: cpus must be an integer 1–256, got "0"/],
  ["qemu:cpus=999", {}, /^qemu: cpus must be at most 256, got "999"/],
  [
    "qemu",
    { QEMU_CPUS: "many" },
    /^qemu: cpus must be an integer 1–256, got "many" \(from \$QEMU_CPUS\)$/,
  ],
  [
    "hetzner:reuse_worker=yes",
    TOKENS,
    /^hetzner: reuse_worker must be true or false, got "yes" \(from the DSN\)$/,
  ],
  ["hetzner:reuse_worker=TRUE", TOKENS, /reuse_worker must be true or false, got "TRUE"/],
  [
    "digitalocean",
    { ...TOKENS, DIGITALOCEAN_REUSE_WORKER: "1" },
    /reuse_worker must be true or false, got "1" \(from \$DIGITALOCEAN_REUSE_WORKER\)/,
  ],
  [
    "hetzner:poll_interval=0",
    TOKENS,
    /^hetzner: poll_interval must be a duration greater than 0, such as 10s, got "0"/,
  ],
  ["hetzner:poll_interval=0s", TOKENS, /poll_interval must be a duration greater than 0/],
  ["hetzner:poll_interval=0m0s", TOKENS, /poll_interval must be a duration greater than 0/],
  [
    "hetzner:poll_interval=10",
    TOKENS,
    /^hetzner: poll_interval must be a duration such as 10s, 5m or 1h30m, got "10"/,
  ],
  [
    "hetzner:wait_timeout=soon",
    TOKENS,
    /^hetzner: wait_timeout must be a duration such as 10s, 5m or 1h30m \(0 = no limit\), got "soon"/,
  ],
  ["hetzner:ssh_timeout=0", TOKENS, /ssh_timeout must be a duration greater than 0/],
  ["digitalocean:docker_timeout=5x", TOKENS, /docker_timeout must be a duration/],
  ["qemu:accel=xen", {}, /^qemu: accel must be one of hvf, kvm, tcg, got "xen" \(from the DSN\)$/],
  [
    "qemu",
    { QEMU_ACCEL: "KVM" },
    /accel must be one of hvf, kvm, tcg, got "KVM" \(from \$QEMU_ACCEL\)/,
  ],
  [
    "docker:host=localhost:2375",
    {},
    /^docker: host must be a URL starting with unix:\/\/, tcp:\/\/, ssh:\/\/, http:\/\/, https:\/\/ or npipe:\/\/, got "localhost:2375"/,
  ],
  [
    "docker",
    { DOCKER_HOST: "/var/run/docker.sock" },
    /host must be a URL.*\(from \$DOCKER_HOST\)$/,
  ],
  ["k8s:namespace=Prod", {}, /^k8s: namespace must be a DNS label .*got "Prod"/],
  [
    "hetzner:labels=env",
    TOKENS,
    /^hetzner: labels must be comma-separated key=value pairs, got the item "env"/,
  ],
  [
    "hetzner:labels==x",
    TOKENS,
    /labels must be comma-separated key=value pairs, got the item "=x"/,
  ],
  ["hetzner:labels=a=1,a=2", TOKENS, /labels must not repeat a key, got "a" twice/],
  [
    "hetzner:max_workers=0,reuse_worker=maybe",
    TOKENS,
    /^hetzner: max_workers must be .*; hetzner: reuse_worker must be true or false/,
  ],
];

for (const [dsn, env, pattern] of ERRORS) {
  Deno.test(`validation error: ${JSON.stringify(env)} ${dsn}`, () => {
    assertDsnError(() => resolve(dsn, env), pattern);
  });
}

Deno.test("wait_timeout=0 means no limit and is accepted", () => {
  assert.equal(resolve("hetzner:wait_timeout=0", TOKENS).config.wait_timeout, "0");
  assert.equal(resolve("digitalocean:wait_timeout=0", TOKENS).config.wait_timeout, "0");
});

Deno.test("an unknown parameter that is a near miss of a known one is an error naming it", () => {
  assertDsnError(
    () => resolve("docker:hots=unix:///var/run/docker.sock"),
    /^docker: unknown parameter "hots" \(did you mean "host"\?\): fix its name, or drop it$/,
  );
  assertDsnError(
    () => resolve("docker://?HOST=x"),
    /unknown parameter "HOST" \(did you mean "host"\?\)/,
  );
  assertDsnError(
    () => resolve("hetzner:token=t,max_worker=3,lokation=VALUE9"),
    /^hetzner: unknown parameter "max_worker" \(did you mean "max_workers"\?\): fix its name, or drop it; hetzner: unknown parameter "lokation" \(did you mean "location"\?\)/,
  );
  // A misspelt token is refused before the missing token is reported, and never echoed.
  assertDsnError(
    () => resolve("hetzner:tokn=VALUE9"),
    /^hetzner: unknown parameter "tokn" \(did you mean "token"\?\)/,
  );
  assert.throws(
    () => resolve("hetzner:tokn=VALUE9"),
    (error: Error) => !error.message.includes("VALUE9"),
  );
});

Deno.test("unknown parameters that are no near miss warn with the name, never the value", () => {
  const resolved: ResolvedDsn = resolve(
    "hetzner:token=t,max_workerzzz=3,zzz=VALUE9",
  );
  assert.deepEqual(resolved.warnings, [
    'hetzner: unknown parameter "max_workerzzz" is ignored (did you mean "max_workers"?)',
    'hetzner: unknown parameter "zzz" is ignored (known: token, image, server_type, location, ' +
    "disk_size, ssh_timeout, docker_timeout, labels, max_workers, reuse_worker, poll_interval, " +
    "wait_timeout, idle_timeout)",
  ]);
  assert.equal(resolved.config.max_workers, 1);
  assert.ok(!resolved.warnings.join().includes("VALUE9"));
  assert.match(
    resolve("docker:namespace=x").warnings[0],
    /set the namespace with docker:\/\/NAMESPACE/,
  );
  assert.match(resolve("native:foo=1").warnings[0], /the native driver takes no parameters/);
});

Deno.test("errors are one line and never echo a secret, from the DSN or the environment", () => {
  const secret = "tok_SECRET_4242";
  const cases: Array<[string, Record<string, string>]> = [
    [`hetzner:token=${secret},max_workers=0`, {}],
    [`hetzner://ns?token=${secret}&reuse_worker=maybe`, {}],
    [`hetzner:token=${secret},token=${secret}x`, {}],
    [`hetzner?token=${secret}`, {}],
    [`hetzner:${secret}`, {}],
    [`digitalocean:tokn=${secret}`, {}],
    [`hetzner://Ns?token=${secret}`, {}],
    [`hetzner:max_workers=x`, { HETZNER_TOKEN: secret }],
    [`fly:token=${encodeURIComponent(secret)},size=`, {}],
    [`docker:host=foo://me:${secret}@host`, {}],
    [`docker:host=ssh://me:${secret}@host,host=x`, {}],
    [`${secret}:token=${secret}`, {}],
  ];
  for (const [dsn, env] of cases) {
    let message = "";
    try {
      resolve(dsn, env);
    } catch (error) {
      assert.ok(error instanceof DsnError);
      message = error.message;
    }
    if (message === "") {
      // the only valid one: fly with a token (size empty → default)
      assert.ok(dsn.startsWith("fly:"), dsn);
      continue;
    }
    assert.doesNotMatch(message, /\n/);
    assert.ok(!message.includes(secret), `${dsn}: ${message}`);
  }
});

Deno.test("driverStringFrom: --driver, else POCKETCI_DRIVER, else native", () => {
  assert.equal(driverStringFrom("docker", { POCKETCI_DRIVER: "k8s" }), "docker");
  assert.equal(driverStringFrom(undefined, { POCKETCI_DRIVER: "k8s://prod" }), "k8s://prod");
  assert.equal(driverStringFrom(undefined, {}), "native");
});

Deno.test("an explicitly empty driver never falls back: --driver= is rejected, so is POCKETCI_DRIVER=", () => {
  // The flag is passed on as given, and parsing refuses it.
  assert.equal(driverStringFrom("", { POCKETCI_DRIVER: "k8s" }), "");
  assertDsnError(() => resolve(driverStringFrom("", {})), /^empty driver string: give a driver/);
  assertDsnError(() => resolve(driverStringFrom("  ", {})), /^empty driver string/);
  for (const empty of ["", " ", "\t"]) {
    assertDsnError(
      () => driverStringFrom(undefined, { POCKETCI_DRIVER: empty }),
      /^\$POCKETCI_DRIVER is set but empty: set it to a driver name or unset it \(an empty value never means native\); known drivers: native, /,
    );
  }
});

Deno.test("driverStringFrom reads the process environment by default", () => {
  const previous = Deno.env.get("POCKETCI_DRIVER");
  Deno.env.set("POCKETCI_DRIVER", "qemu:accel=tcg");
  try {
    assert.equal(driverStringFrom(undefined), "qemu:accel=tcg");
  } finally {
    if (previous === undefined) Deno.env.delete("POCKETCI_DRIVER");
    else Deno.env.set("POCKETCI_DRIVER", previous);
  }
});

Deno.test("resolveDsn works without any permission, warning that /dev/kvm could not be checked", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-dsn-" });
  try {
    const script = `${dir}/probe.ts`;
    const mod = new URL("./mod.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { resolveDsn } from "${mod}";\n` +
        `const r = resolveDsn("qemu");\n` +
        `await Deno.stdout.write(new TextEncoder().encode(JSON.stringify(r)));\n`,
    );
    const config = new URL("../deno.json", import.meta.url).pathname;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--config", config, script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    const resolved = JSON.parse(new TextDecoder().decode(output.stdout));
    assert.equal(resolved.driver, "qemu");
    if (Deno.build.os === "linux") {
      assert.equal(resolved.config.accel, "tcg");
      assert.deepEqual(resolved.warnings, [
        "qemu: cannot read /dev/kvm (no --allow-read), so accel defaults to tcg",
      ]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
