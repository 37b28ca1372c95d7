// Every example line of shared/spec/driver-dsn.md, resolved, must mean what the spec says.
import assert from "node:assert/strict";
import { defaultNamespace } from "./namespace.ts";
import { resolveDsn } from "./resolve.ts";
import type { DriverName } from "./types.ts";

const HOST = { os: "linux", arch: "x86_64", kvm: true } as const;
const CWD = "/work/project";
const DEFAULT_NS = defaultNamespace(undefined, CWD);
/** Rows of the spec's parameter tables show one parameter; the token then comes from the env. */
const TOKENS = {
  DIGITALOCEAN_TOKEN: "dop_v1_env",
  HETZNER_TOKEN: "hz_env",
  FLY_API_TOKEN: "fo1_env",
};

interface Example {
  readonly dsn: string;
  readonly env?: Record<string, string>;
  readonly driver: DriverName;
  readonly namespace?: string;
  readonly config: Record<string, unknown>;
  readonly warnings?: readonly RegExp[];
}

const unknownParam = (driver: string, name: string): RegExp =>
  new RegExp(`^${driver}: unknown parameter "${name}" is ignored`);

const EXAMPLES: readonly Example[] = [
  // Format options
  { dsn: "native", driver: "native", config: {} },
  { dsn: "docker", driver: "docker", config: { host: "unix:///var/run/docker.sock" } },
  {
    dsn: "k8s",
    driver: "k8s",
    config: { namespace: "default", kubeconfig: "/home/ci/.kube/config" },
  },
  {
    dsn: "k8s://production",
    driver: "k8s",
    namespace: "production",
    config: { namespace: "production" },
  },
  {
    dsn: "k8s://staging?region=us-east&timeout=300",
    driver: "k8s",
    namespace: "staging",
    config: { namespace: "staging" },
    warnings: [unknownParam("k8s", "region"), unknownParam("k8s", "timeout")],
  },
  { dsn: "k8s:namespace=production", driver: "k8s", config: { namespace: "production" } },
  {
    dsn: "k8s:namespace=staging,region=us-west,timeout=600",
    driver: "k8s",
    config: { namespace: "staging" },
    warnings: [unknownParam("k8s", "region"), unknownParam("k8s", "timeout")],
  },
  // K8s
  {
    dsn: "k8s:kubeconfig=/path/to/config",
    driver: "k8s",
    config: { kubeconfig: "/path/to/config" },
  },
  {
    dsn: "k8s://my-namespace",
    driver: "k8s",
    namespace: "my-namespace",
    config: { namespace: "my-namespace" },
  },
  { dsn: "k8s:namespace=staging", driver: "k8s", config: { namespace: "staging" } },
  {
    dsn: "k8s:namespace=prod,kubeconfig=/etc/k8s/config",
    driver: "k8s",
    config: { namespace: "prod", kubeconfig: "/etc/k8s/config" },
  },
  {
    dsn: "k8s://production?kubeconfig=/path/to/config",
    driver: "k8s",
    namespace: "production",
    config: { namespace: "production", kubeconfig: "/path/to/config" },
  },
  // Docker
  {
    dsn: "docker:host=ssh://user@remote:22",
    driver: "docker",
    config: { host: "ssh://user@remote:22" },
  },
  {
    dsn: "docker:host=unix:///var/run/docker.sock",
    driver: "docker",
    config: { host: "unix:///var/run/docker.sock" },
  },
  {
    dsn: "docker:host=ssh://user@host:22",
    driver: "docker",
    config: { host: "ssh://user@host:22" },
  },
  // DigitalOcean table
  { dsn: "digitalocean:token=dop_v1_xxx", driver: "digitalocean", config: { token: "dop_v1_xxx" } },
  {
    dsn: "digitalocean:image=docker-24-04",
    env: TOKENS,
    driver: "digitalocean",
    config: { token: "dop_v1_env", image: "docker-24-04" },
  },
  {
    dsn: "digitalocean:size=s-2vcpu-4gb",
    env: TOKENS,
    driver: "digitalocean",
    config: { size: "s-2vcpu-4gb" },
  },
  {
    dsn: "digitalocean:region=sfo3",
    env: TOKENS,
    driver: "digitalocean",
    config: { region: "sfo3" },
  },
  {
    dsn: "digitalocean:disk_size=50",
    env: TOKENS,
    driver: "digitalocean",
    config: { disk_size: 50 },
  },
  {
    dsn: "digitalocean:tags=prod,myapp",
    env: TOKENS,
    driver: "digitalocean",
    config: { tags: ["prod", "myapp"] },
  },
  {
    dsn: "digitalocean:max_workers=3",
    env: TOKENS,
    driver: "digitalocean",
    config: { max_workers: 3 },
  },
  {
    dsn: "digitalocean:reuse_worker=true",
    env: TOKENS,
    driver: "digitalocean",
    config: { reuse_worker: true },
  },
  {
    dsn: "digitalocean:poll_interval=5s",
    env: TOKENS,
    driver: "digitalocean",
    config: { poll_interval: "5s" },
  },
  {
    dsn: "digitalocean:wait_timeout=30m",
    env: TOKENS,
    driver: "digitalocean",
    config: { wait_timeout: "30m" },
  },
  // DigitalOcean examples
  {
    dsn: "digitalocean:token=dop_v1_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    driver: "digitalocean",
    config: { token: "dop_v1_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", size: "s-1vcpu-1gb" },
  },
  {
    dsn: "digitalocean",
    env: { DIGITALOCEAN_TOKEN: "dop_v1_xxx" },
    driver: "digitalocean",
    config: { token: "dop_v1_xxx" },
  },
  { dsn: "digitalocean:size=auto", env: TOKENS, driver: "digitalocean", config: { size: "auto" } },
  {
    dsn:
      "digitalocean://ci-namespace?token=dop_v1_xxx&image=docker-20-04&size=s-2vcpu-4gb&region=sfo3&disk_size=50",
    driver: "digitalocean",
    namespace: "ci-namespace",
    config: {
      token: "dop_v1_xxx",
      image: "docker-20-04",
      size: "s-2vcpu-4gb",
      region: "sfo3",
      disk_size: 50,
    },
  },
  {
    dsn: "digitalocean:token=dop_v1_xxx,size=auto,region=nyc1",
    driver: "digitalocean",
    config: { token: "dop_v1_xxx", size: "auto", region: "nyc1" },
  },
  {
    dsn: "digitalocean:token=dop_v1_xxx,max_workers=3",
    driver: "digitalocean",
    config: { max_workers: 3, reuse_worker: false },
  },
  {
    dsn: "digitalocean:token=dop_v1_xxx,reuse_worker=true,max_workers=2",
    driver: "digitalocean",
    config: { max_workers: 2, reuse_worker: true },
  },
  // Hetzner table
  { dsn: "hetzner:token=xxx", driver: "hetzner", config: { token: "xxx" } },
  {
    dsn: "hetzner:image=ubuntu-22.04",
    env: TOKENS,
    driver: "hetzner",
    config: { image: "ubuntu-22.04" },
  },
  {
    dsn: "hetzner:server_type=cx33",
    env: TOKENS,
    driver: "hetzner",
    config: { server_type: "cx33" },
  },
  { dsn: "hetzner:location=fsn1", env: TOKENS, driver: "hetzner", config: { location: "fsn1" } },
  { dsn: "hetzner:disk_size=50", env: TOKENS, driver: "hetzner", config: { disk_size: 50 } },
  {
    dsn: "hetzner:ssh_timeout=10m",
    env: TOKENS,
    driver: "hetzner",
    config: { ssh_timeout: "10m" },
  },
  {
    dsn: "hetzner:docker_timeout=10m",
    env: TOKENS,
    driver: "hetzner",
    config: { docker_timeout: "10m" },
  },
  {
    dsn: "hetzner:labels=env=prod,app=x",
    env: TOKENS,
    driver: "hetzner",
    config: { labels: { env: "prod", app: "x" } },
  },
  { dsn: "hetzner:max_workers=3", env: TOKENS, driver: "hetzner", config: { max_workers: 3 } },
  {
    dsn: "hetzner:reuse_worker=true",
    env: TOKENS,
    driver: "hetzner",
    config: { reuse_worker: true },
  },
  {
    dsn: "hetzner:poll_interval=5s",
    env: TOKENS,
    driver: "hetzner",
    config: { poll_interval: "5s" },
  },
  {
    dsn: "hetzner:wait_timeout=30m",
    env: TOKENS,
    driver: "hetzner",
    config: { wait_timeout: "30m" },
  },
  // Hetzner examples
  {
    dsn: "hetzner:token=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    driver: "hetzner",
    config: { token: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" },
  },
  { dsn: "hetzner", env: { HETZNER_TOKEN: "xxx" }, driver: "hetzner", config: { token: "xxx" } },
  {
    dsn: "hetzner:server_type=auto",
    env: TOKENS,
    driver: "hetzner",
    config: { server_type: "auto" },
  },
  {
    dsn:
      "hetzner://ci-namespace?token=xxx&image=docker-ce&server_type=cx33&location=nbg1&disk_size=50",
    driver: "hetzner",
    namespace: "ci-namespace",
    config: {
      token: "xxx",
      image: "docker-ce",
      server_type: "cx33",
      location: "nbg1",
      disk_size: 50,
    },
  },
  {
    dsn: "hetzner:token=xxx,server_type=auto,location=fsn1",
    driver: "hetzner",
    config: { token: "xxx", server_type: "auto", location: "fsn1" },
  },
  { dsn: "hetzner:token=xxx,max_workers=3", driver: "hetzner", config: { max_workers: 3 } },
  {
    dsn: "hetzner:token=xxx,reuse_worker=true,max_workers=2",
    driver: "hetzner",
    config: { max_workers: 2, reuse_worker: true },
  },
  // Fly table
  {
    dsn: "fly:token=fo1_xxx",
    driver: "fly",
    config: { token: "fo1_xxx", app: null, region: null },
  },
  { dsn: "fly:app=my-ci", env: TOKENS, driver: "fly", config: { app: "my-ci" } },
  { dsn: "fly:region=ord", env: TOKENS, driver: "fly", config: { region: "ord" } },
  { dsn: "fly:org=my-org", env: TOKENS, driver: "fly", config: { org: "my-org" } },
  { dsn: "fly:size=shared-cpu-2x", env: TOKENS, driver: "fly", config: { size: "shared-cpu-2x" } },
  // Fly examples
  {
    dsn: "fly",
    env: { FLY_API_TOKEN: "fo1_xxx" },
    driver: "fly",
    config: { token: "fo1_xxx", app: null },
  },
  {
    dsn: "fly:app=my-ci-app,region=ord",
    env: TOKENS,
    driver: "fly",
    config: { app: "my-ci-app", region: "ord" },
  },
  {
    dsn: "fly://my-namespace?token=fo1_xxx&app=my-ci&region=lax",
    driver: "fly",
    namespace: "my-namespace",
    config: { token: "fo1_xxx", app: "my-ci", region: "lax" },
  },
  {
    dsn: "fly:token=fo1_xxx,app=my-ci,region=ord,org=my-org,size=shared-cpu-2x",
    driver: "fly",
    config: { token: "fo1_xxx", app: "my-ci", region: "ord", org: "my-org", size: "shared-cpu-2x" },
  },
  // QEMU table
  { dsn: "qemu:memory=4096", driver: "qemu", config: { memory: 4096 } },
  { dsn: "qemu:cpus=4", driver: "qemu", config: { cpus: 4 } },
  { dsn: "qemu:accel=tcg", driver: "qemu", config: { accel: "tcg" } },
  {
    dsn: "qemu:qemu_binary=/usr/bin/qemu-system-x86_64",
    driver: "qemu",
    config: { qemu_binary: "/usr/bin/qemu-system-x86_64" },
  },
  {
    dsn: "qemu:cache_dir=/tmp/qemu-cache",
    driver: "qemu",
    config: { cache_dir: "/tmp/qemu-cache" },
  },
  {
    dsn: "qemu:image=/path/to/image.qcow2",
    driver: "qemu",
    config: { image: "/path/to/image.qcow2" },
  },
  // QEMU examples
  {
    dsn: "qemu",
    driver: "qemu",
    config: {
      memory: 2048,
      cpus: 2,
      accel: "kvm",
      qemu_binary: "qemu-system-x86_64",
      cache_dir: "/home/ci/.cache/ci/qemu",
      image: null,
    },
  },
  { dsn: "qemu:memory=4096,cpus=4", driver: "qemu", config: { memory: 4096, cpus: 4 } },
  {
    dsn: "qemu://my-namespace?memory=4096&cpus=4",
    driver: "qemu",
    namespace: "my-namespace",
    config: { memory: 4096, cpus: 4 },
  },
  {
    dsn: "qemu:image=/path/to/custom.qcow2",
    driver: "qemu",
    config: { image: "/path/to/custom.qcow2" },
  },
  // VZ table and examples
  { dsn: "vz:memory=4096", driver: "vz", config: { memory: 4096 } },
  { dsn: "vz:cpus=4", driver: "vz", config: { cpus: 4 } },
  { dsn: "vz:cache_dir=/tmp/vz-cache", driver: "vz", config: { cache_dir: "/tmp/vz-cache" } },
  { dsn: "vz:image=/path/to/image.raw", driver: "vz", config: { image: "/path/to/image.raw" } },
  {
    dsn: "vz",
    driver: "vz",
    config: { memory: 2048, cpus: 2, cache_dir: "/home/ci/.cache/ci/vz", image: null },
  },
  { dsn: "vz:memory=4096,cpus=4", driver: "vz", config: { memory: 4096, cpus: 4 } },
  {
    dsn: "vz://my-namespace?memory=4096&cpus=4",
    driver: "vz",
    namespace: "my-namespace",
    config: { memory: 4096, cpus: 4 },
  },
  { dsn: "vz:image=/path/to/custom.raw", driver: "vz", config: { image: "/path/to/custom.raw" } },
  // "Examples" section
  {
    dsn: "k8s://staging?region=us-east",
    driver: "k8s",
    namespace: "staging",
    config: { namespace: "staging" },
    warnings: [unknownParam("k8s", "region")],
  },
  {
    dsn: "k8s://production?region=us-west",
    driver: "k8s",
    namespace: "production",
    config: { namespace: "production" },
    warnings: [unknownParam("k8s", "region")],
  },
];

for (const example of EXAMPLES) {
  const label = example.env
    ? `${Object.keys(example.env).join(",")} + ${example.dsn}`
    : example.dsn;
  Deno.test(`spec example: ${label}`, () => {
    const resolved = resolveDsn(example.dsn, {
      env: { HOME: "/home/ci", ...example.env },
      cwd: CWD,
      host: HOST,
    });
    assert.equal(resolved.driver, example.driver);
    assert.equal(resolved.namespace, example.namespace ?? DEFAULT_NS);
    assert.equal(resolved.namespaceFromDsn, example.namespace !== undefined);
    for (const [key, value] of Object.entries(example.config)) {
      assert.deepEqual(resolved.config[key], value, `config.${key}`);
    }
    const warnings = example.warnings ?? [];
    assert.equal(resolved.warnings.length, warnings.length, resolved.warnings.join(" | "));
    warnings.forEach((pattern, index) => assert.match(resolved.warnings[index], pattern));
  });
}

Deno.test("spec examples that need a token fail without one, naming both ways to give it", () => {
  for (
    const [dsn, env] of [
      ["digitalocean:size=auto", "DIGITALOCEAN_TOKEN"],
      ["hetzner:server_type=auto", "HETZNER_TOKEN"],
      ["fly:app=my-ci-app,region=ord", "FLY_API_TOKEN"],
    ]
  ) {
    const driver = dsn.split(":")[0];
    assert.throws(
      () => resolveDsn(dsn, { env: {}, cwd: CWD, host: HOST }),
      new RegExp(
        `^DsnError: ${driver}: token is required: add token=\\.\\.\\. to the DSN \\(${driver}:token=\\.\\.\\.\\) or set ${env}$`,
      ),
    );
  }
});
