import assert from "node:assert/strict";
import {
  hidePassword,
  redactConfig,
  redactParam,
  redactValues,
  secretValues,
  shownNamespace,
  urlPassword,
} from "./redact.ts";
import { resolveDsn } from "./resolve.ts";
import type { ResolvedDsn } from "./types.ts";

const HOST = { os: "linux", arch: "x86_64", kvm: false } as const;
const resolve = (dsn: string, env: Record<string, string> = {}) =>
  resolveDsn(dsn, { env, cwd: "/p", host: HOST });

Deno.test("a token from the DSN is *** in params and config, and listed as a secret value", () => {
  const resolved = resolve("hetzner:token=hz_SECRET_1,location=fsn1");
  assert.deepEqual(resolved.params, { token: "***", location: "fsn1" });
  assert.equal(resolved.config.token, "hz_SECRET_1");
  const printed = redactConfig(resolved);
  assert.equal(printed.token, "***");
  assert.equal(printed.location, "fsn1");
  assert.deepEqual(secretValues(resolved), ["hz_SECRET_1"]);
  assert.ok(!JSON.stringify({ ...resolved, config: printed }).includes("hz_SECRET_1"));
});

Deno.test("a token from the environment is *** in config and listed as a secret value", () => {
  const resolved = resolve("fly:app=x", { FLY_API_TOKEN: "fo1_ENV_SECRET" });
  assert.deepEqual(resolved.params, { app: "x" });
  assert.equal(redactConfig(resolved).token, "***");
  assert.deepEqual(secretValues(resolved), ["fo1_ENV_SECRET"]);
});

Deno.test("an unset secret is null in the printed config", () => {
  const resolved: ResolvedDsn = {
    driver: "fly",
    namespace: "ns",
    namespaceFromDsn: true,
    params: {},
    config: { token: null, app: null, region: null, org: "personal", size: "shared-cpu-1x" },
    warnings: [],
  };
  assert.deepEqual(redactConfig(resolved), resolved.config);
  assert.deepEqual(secretValues(resolved), []);
});

Deno.test("secretValues works on a copy of a resolved DSN too (from its config)", () => {
  const copy = { ...resolve("digitalocean:token=dop_COPY") };
  assert.deepEqual(secretValues(copy), ["dop_COPY"]);
});

Deno.test("params hides values of secret-looking and misspelled secret names, never plain ones", () => {
  const resolved = resolve(
    "k8s:tokn=V1,token=V2,api_key=V3,my_secret=V4,password=V5,auth=V6,region=us,timeout=",
  );
  assert.deepEqual(resolved.params, {
    tokn: "***",
    token: "***",
    api_key: "***",
    my_secret: "***",
    password: "***",
    auth: "***",
    region: "us",
    timeout: "",
  });
  assert.deepEqual(secretValues(resolved).sort(), ["V1", "V2", "V3", "V4", "V5", "V6"]);
  const text = JSON.stringify(resolved.warnings);
  for (const value of ["V1", "V2", "V3", "V4", "V5", "V6"]) assert.ok(!text.includes(value));
  assert.match(text, /unknown parameter \\"tokn\\"/);
});

Deno.test("an empty secret parameter stays empty in params", () => {
  assert.equal(redactParam("token", ""), "");
  assert.equal(redactParam("token", "x"), "***");
  assert.equal(redactParam("region", "x"), "x");
});

Deno.test("passwords inside URLs are hidden and listed as secret values", () => {
  const resolved = resolve("docker:host=ssh://me:pw_SECRET@build:22");
  assert.equal(resolved.params.host, "ssh://me:***@build:22");
  assert.equal(resolved.config.host, "ssh://me:pw_SECRET@build:22");
  assert.equal(redactConfig(resolved).host, "ssh://me:***@build:22");
  assert.deepEqual(secretValues(resolved), ["pw_SECRET"]);
  const fromEnv = resolve("docker", { DOCKER_HOST: "tcp://u:pw2@h:2376" });
  assert.equal(redactConfig(fromEnv).host, "tcp://u:***@h:2376");
  assert.deepEqual(secretValues(fromEnv), ["pw2"]);
});

Deno.test("URL password helpers", () => {
  assert.equal(urlPassword("ssh://user@host:22"), undefined);
  assert.equal(urlPassword("ssh://user:@host"), undefined);
  assert.equal(urlPassword("ssh://user:p@host"), "p");
  assert.equal(hidePassword("ssh://user@host:22"), "ssh://user@host:22");
  assert.equal(hidePassword("unix:///var/run/docker.sock"), "unix:///var/run/docker.sock");
  assert.equal(hidePassword("https://a:b@c/d?e=f@g"), "https://a:***@c/d?e=f@g");
});

Deno.test("a misspelled token after a list is a parameter, not a tag, so it is refused unseen", () => {
  // Were "tokn=..." folded into the tags, there would be no error (and the value would be a tag).
  assert.throws(
    () => resolve("digitalocean:token=t,tags=prod,tokn=TAG_SECRET"),
    (error: Error) =>
      /unknown parameter "tokn" \(did you mean "token"\?\)/.test(error.message) &&
      !error.message.includes("TAG_SECRET"),
  );
});

Deno.test("a secret value repeated in tags=, image=, labels= or the namespace is *** wherever it is shown", () => {
  const token = "dop_REPEAT_77";
  const resolved = resolve(
    `digitalocean://ns-1?token=${token}&tags=prod,${token}&image=img-${encodeURIComponent(token)}`,
  );
  assert.deepEqual(resolved.config.tags, ["prod", token], "the real config keeps the value");
  assert.deepEqual(resolved.params, { token: "***", tags: "prod,***", image: "img-***" });
  const printed = redactConfig(resolved);
  assert.deepEqual(printed.tags, ["prod", "***"]);
  assert.equal(printed.image, "img-***");
  const hetzner = resolve(
    "hetzner:token=hz_SECRET_REP,labels=team=hz_SECRET_REP,image=hz_SECRET_REP",
  );
  assert.deepEqual(redactConfig(hetzner).labels, { team: "***" });
  assert.equal(redactConfig(hetzner).image, "***");
  const k8s = resolve("k8s://tok-in-namespace?token=tok-in-namespace");
  assert.equal(k8s.namespace, "tok-in-namespace", "the namespace used keeps the value");
  assert.equal(shownNamespace(k8s), "***");
  for (const value of [resolved, hetzner, k8s]) {
    const text = JSON.stringify([
      value.params,
      redactConfig(value),
      shownNamespace(value),
      value.warnings,
    ]);
    for (const secret of secretValues(value)) assert.ok(!text.includes(secret), secret);
  }
});

Deno.test("a secret repeated in an unknown parameter's name is hidden in the warning", () => {
  const resolved = resolve("docker:host=ssh://me:pw_REPEATED@h,pw_REPEATED=1");
  assert.ok(resolved.warnings.length > 0);
  assert.ok(!resolved.warnings.join(" ").includes("pw_REPEATED"), resolved.warnings.join(" "));
});

Deno.test("redactValues: every occurrence and the percent-encoded form; short values only whole", () => {
  assert.equal(redactValues("a-tok/en-b tok/en tok%2Fen", ["tok/en"]), "a-***-b *** ***");
  assert.equal(redactValues("xy", ["xy"]), "***");
  assert.equal(redactValues("axyb", ["xy"]), "axyb");
});
