import assert from "node:assert/strict";
import { parseDsn } from "./parse.ts";
import { DsnError, type ParsedDsn } from "./types.ts";

type Expected = Omit<ParsedDsn, "params"> & { params?: Record<string, string> };

const VALID: ReadonlyArray<readonly [string, Expected]> = [
  // plain names, case-insensitive, `driver:` equals the plain name
  ["native", { driver: "native", form: "plain" }],
  ["docker", { driver: "docker", form: "plain" }],
  ["k8s", { driver: "k8s", form: "plain" }],
  ["DOCKER", { driver: "docker", form: "plain" }],
  ["Hetzner", { driver: "hetzner", form: "plain" }],
  ["  docker  ", { driver: "docker", form: "plain" }],
  ["docker:", { driver: "docker", form: "plain" }],
  // URL form
  ["k8s://production", { driver: "k8s", form: "url", namespace: "production" }],
  ["K8S://prod", { driver: "k8s", form: "url", namespace: "prod" }],
  [
    "k8s://staging?region=us-east&timeout=300",
    {
      driver: "k8s",
      form: "url",
      namespace: "staging",
      params: { region: "us-east", timeout: "300" },
    },
  ],
  ["k8s://", { driver: "k8s", form: "url" }],
  ["k8s://?a=1", { driver: "k8s", form: "url", params: { a: "1" } }],
  ["k8s://ns?", { driver: "k8s", form: "url", namespace: "ns" }],
  ["k8s://ns?a=1&&b=2&", {
    driver: "k8s",
    form: "url",
    namespace: "ns",
    params: { a: "1", b: "2" },
  }],
  ["k8s://ns?x=a%20b+c", { driver: "k8s", form: "url", namespace: "ns", params: { x: "a b+c" } }],
  ["k8s://ns?x=%2C%3D%26%25", {
    driver: "k8s",
    form: "url",
    namespace: "ns",
    params: { x: ",=&%" },
  }],
  ["k8s://ns?x=caf%C3%A9", { driver: "k8s", form: "url", namespace: "ns", params: { x: "café" } }],
  ["k8s://ns?k%65y=v", { driver: "k8s", form: "url", namespace: "ns", params: { key: "v" } }],
  ["k8s://ns?a=", { driver: "k8s", form: "url", namespace: "ns", params: { a: "" } }],
  ["k8s://ns?a=b=c", { driver: "k8s", form: "url", namespace: "ns", params: { a: "b=c" } }],
  [
    "k8s://production?kubeconfig=/path/to/config",
    {
      driver: "k8s",
      form: "url",
      namespace: "production",
      params: { kubeconfig: "/path/to/config" },
    },
  ],
  ["k8s://0ns-1", { driver: "k8s", form: "url", namespace: "0ns-1" }],
  [`k8s://${"a".repeat(63)}`, { driver: "k8s", form: "url", namespace: "a".repeat(63) }],
  [
    "digitalocean://ns?tags=prod%2Cmyapp",
    { driver: "digitalocean", form: "url", namespace: "ns", params: { tags: "prod,myapp" } },
  ],
  [
    "hetzner://ns?labels=env=prod,app=x&location=fsn1",
    {
      driver: "hetzner",
      form: "url",
      namespace: "ns",
      params: { labels: "env=prod,app=x", location: "fsn1" },
    },
  ],
  // colon form: values literal, may contain : / = ?
  ["k8s:namespace=production", {
    driver: "k8s",
    form: "colon",
    params: { namespace: "production" },
  }],
  [
    "k8s:namespace=staging,region=us-west,timeout=600",
    {
      driver: "k8s",
      form: "colon",
      params: { namespace: "staging", region: "us-west", timeout: "600" },
    },
  ],
  [
    "docker:host=ssh://user@host:22",
    { driver: "docker", form: "colon", params: { host: "ssh://user@host:22" } },
  ],
  [
    "docker:host=unix:///var/run/docker.sock",
    { driver: "docker", form: "colon", params: { host: "unix:///var/run/docker.sock" } },
  ],
  ["docker:host=", { driver: "docker", form: "colon", params: { host: "" } }],
  ["k8s:a=1,,b=2,", { driver: "k8s", form: "colon", params: { a: "1", b: "2" } }],
  ["k8s:x=a=b", { driver: "k8s", form: "colon", params: { x: "a=b" } }],
  ["k8s:x=a?b:c/d", { driver: "k8s", form: "colon", params: { x: "a?b:c/d" } }],
  ["k8s:a=%20", { driver: "k8s", form: "colon", params: { a: "%20" } }],
  ["k8s:a=x+y", { driver: "k8s", form: "colon", params: { a: "x+y" } }],
  ["k8s:,,", { driver: "k8s", form: "colon" }],
  // list-valued parameters absorb following pieces that are not known parameter names
  [
    "digitalocean:tags=prod,myapp",
    { driver: "digitalocean", form: "colon", params: { tags: "prod,myapp" } },
  ],
  [
    "digitalocean:tags=prod,myapp,region=sfo3",
    { driver: "digitalocean", form: "colon", params: { tags: "prod,myapp", region: "sfo3" } },
  ],
  [
    "digitalocean:token=x,tags=a,b,c",
    { driver: "digitalocean", form: "colon", params: { token: "x", tags: "a,b,c" } },
  ],
  [
    "digitalocean:tags=,a,,b,",
    { driver: "digitalocean", form: "colon", params: { tags: "a,b" } },
  ],
  [
    "hetzner:labels=env=prod,app=x",
    { driver: "hetzner", form: "colon", params: { labels: "env=prod,app=x" } },
  ],
  [
    "hetzner:labels=env=prod,app=x,location=fsn1",
    { driver: "hetzner", form: "colon", params: { labels: "env=prod,app=x", location: "fsn1" } },
  ],
  [
    "digitalocean:tags=a,tokn=S3CRET",
    { driver: "digitalocean", form: "colon", params: { tags: "a", tokn: "S3CRET" } },
  ],
  [
    "hetzner:labels=author=me,Token=S3CRET",
    { driver: "hetzner", form: "colon", params: { labels: "author=me", Token: "S3CRET" } },
  ],
  [
    "hetzner:labels=env=prod,regoin=x",
    { driver: "hetzner", form: "colon", params: { labels: "env=prod,regoin=x" } },
  ],
  // tags is only list-valued for digitalocean: elsewhere a bare piece is an error (below)
];

for (const [dsn, expected] of VALID) {
  Deno.test(`parseDsn(${JSON.stringify(dsn)})`, () => {
    assert.deepEqual(parseDsn(dsn), { params: {}, ...expected });
  });
}

const INVALID: ReadonlyArray<readonly [string, RegExp]> = [
  [
    "",
    /^empty driver string: give a driver name \(an empty string never means native\); known drivers: native, docker, k8s, /,
  ],
  ["   ", /^empty driver string/],
  [":a=b", /^empty driver name before ":"; known drivers: native, docker/],
  ["://x", /^empty driver name/],
  [
    "dockr",
    /^unknown driver "dockr" \(did you mean "docker"\?\); known drivers: native, docker, k8s, digitalocean, hetzner, fly, qemu, vz$/,
  ],
  ["podman:x=1", /^unknown driver "podman"; known drivers: /],
  ["my_driver://ns", /^unknown driver "my_driver"/],
  ["docker?x=1", /write docker:\/\/\?x=1 or docker:x=1$/],
  [
    "docker/x",
    /^not a driver string: expected NAME, NAME:\/\/NAMESPACE\?key=value&\.\.\. or NAME:key=value,\.\.\.$/,
  ],
  ["dock er", /^not a driver string/],
  ["k8s://user@ns", /must be a DNS label.*must not contain a user/],
  ["k8s://ns:6443", /must be a DNS label.*must not contain a port/],
  ["k8s://ns/path", /a path after the namespace is not allowed/],
  ["k8s://ns/", /a path after the namespace is not allowed/],
  ["k8s://ns#frag", /a fragment \("#\.\.\."\) is not allowed/],
  ["k8s://ns?a=1#f", /a fragment/],
  ["k8s://Prod", /must not contain uppercase letters/],
  [`k8s://${"a".repeat(64)}`, /it has 64 characters/],
  ["k8s://-ns", /starts or ends with '-'/],
  ["k8s://ns-", /starts or ends with '-'/],
  ["k8s://my_ns", /contains another character/],
  ["k8s://a.b", /contains another character/],
  ["k8s://ns?flag", /^parameter "flag" has no "=": write key=value$/],
  ["k8s:a=1,b", /^parameter "b" has no "="/],
  ["digitalocean:region=x,tags", /^parameter "tags" has no "="/],
  ["k8s://ns?a=1&a=2", /^parameter "a" is given twice; give each parameter once$/],
  ["k8s:a=1,a=2", /^parameter "a" is given twice/],
  ["k8s:a=,a=2", /^parameter "a" is given twice/],
  ["hetzner:location=a,labels=x=1,location=b", /^parameter "location" is given twice/],
  ["hetzner:labels=a=1,labels=b=2", /^parameter "labels" is given twice/],
  ["k8s:=v", /^a parameter has an empty name/],
  ["k8s://ns?=v", /^a parameter has an empty name/],
  ["k8s://ns?a=%zz", /^invalid percent-encoding in the value of parameter "a"/],
  ["k8s://ns?a=%E0%A4%A", /^invalid percent-encoding/],
  ["k8s://ns?%zz=1", /^invalid percent-encoding in a parameter name/],
];

for (const [dsn, pattern] of INVALID) {
  Deno.test(`parseDsn(${JSON.stringify(dsn)}) fails`, () => {
    assert.throws(() => parseDsn(dsn), (error: unknown) => {
      assert.ok(error instanceof DsnError);
      assert.match(error.message, pattern);
      assert.doesNotMatch(error.message, /\n/);
      return true;
    });
  });
}

Deno.test("parse errors never echo a value that may be a secret", () => {
  const secret = "S3cr3tT0kenValue";
  for (
    const dsn of [
      `hetzner?token=${secret}`,
      `hetzner:${secret}`,
      `hetzner:token=x,${secret}`,
      `hetzner://ns?${secret}`,
      `hetzner://ns?tokn=${secret}&x`,
      `hetzner://${secret}?token=x`,
      `hetzner://user:${secret}@ns`,
      `${secret}${secret}:token=x`,
    ]
  ) {
    assert.throws(() => parseDsn(dsn), (error: unknown) => {
      assert.ok(error instanceof DsnError, dsn);
      assert.ok(!error.message.includes(secret), `${dsn} → ${error.message}`);
      assert.ok(!error.message.includes(secret.toLowerCase()), `${dsn} → ${error.message}`);
      return true;
    });
  }
});

Deno.test("the not-a-form suggestion redacts secret-looking values", () => {
  assert.throws(
    () => parseDsn("hetzner?token=abc&location=fsn1"),
    /write hetzner:\/\/\?token=\*\*\*&location=fsn1 or hetzner:token=\*\*\*,location=fsn1$/,
  );
});
