import assert from "node:assert/strict";
import { filesUnder, runCli, tempProject } from "./helpers/cli.ts";

/** A secret whose encoded forms all differ from it: quotes, backslash, slash, space, +, &, é. */
const SECRET = 'S3cr3t "q" \\ b/s & p+ é';
/** A second secret: the state directory is named after it. */
const DIR_SECRET = "StateDirSecret9";

const PIPELINE = `
import { pipeline, secret, task } from "pocketci";
export default pipeline("forms", async (ctx) => {
  const script = [
    'const t = Deno.env.get("T");',
    'const b64 = (s, url) => { let x = ""; for (const c of new TextEncoder().encode(s)) x += String.fromCharCode(c); x = btoa(x); return url ? x.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "") : x; };',
    'console.log("raw: " + t);',
    'console.log("url: " + encodeURIComponent(t));',
    'console.log("form: " + new URLSearchParams({ p: t }));',
    'console.log("json: " + JSON.stringify({ password: t }));',
    'console.log("jsonascii: " + JSON.stringify(t).replace(/[\\\\u007f-\\\\uffff]/g, (c) => "\\\\\\\\u" + c.charCodeAt(0).toString(16).padStart(4, "0")));',
    'console.log("basic: Authorization: Basic " + b64("user:" + t));',
    'console.log("b64a: " + b64("a" + t + "z"));',
    'console.log("b64b: " + b64("ab" + t + "zz"));',
    'console.log("b64c: " + b64("abc" + t));',
    'console.log("b64url: " + b64("user:" + t, true));',
    'console.log("dir: " + Deno.env.get("D"));',
  ].join("\\n");
  await task("forms").env({ T: secret("TOK"), D: secret("DIRSECRET") })
    .run(ctx.args[0], "eval", script);
});`;

function base64(text: string, url = false): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  const encoded = btoa(binary);
  return url ? encoded.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "") : encoded;
}

/** The characters of base64(prefix + SECRET + suffix) that only the secret's bytes decide. */
function secretPart(prefix: string, suffix: string, url = false): string {
  const encoded = base64(prefix + SECRET + suffix, url);
  const before = new TextEncoder().encode(prefix).length;
  const length = new TextEncoder().encode(SECRET).length;
  return encoded.slice(Math.ceil((before * 8) / 6), Math.floor(((before + length) * 8) / 6));
}

/** Every form of a secret that must never be printed (any 8 characters of a base64 part). */
function forbidden(): string[] {
  const json = JSON.stringify(SECRET).slice(1, -1);
  const texts = [
    SECRET,
    DIR_SECRET,
    encodeURIComponent(SECRET),
    new URLSearchParams({ p: SECRET }).toString().slice(2),
    json,
    json.replace(/é/g, "\\u00e9"),
  ];
  const parts = [
    secretPart("user:", ""),
    secretPart("a", "z"),
    secretPart("ab", "zz"),
    secretPart("abc", ""),
    secretPart("user:", "", true),
  ];
  for (const part of parts) {
    for (let at = 0; at + 8 <= part.length; at++) texts.push(part.slice(at, at + 8));
  }
  return texts;
}

Deno.test("run: URL-encoded, JSON-escaped and base64 forms of a secret never reach stdout, NDJSON or the logs; PocketCI's own paths are not masked", async () => {
  const dir = await tempProject({ "pipeline.ts": PIPELINE });
  const stateDir = `${dir}/${DIR_SECRET}`;
  const env = { TOK: SECRET, DIRSECRET: DIR_SECRET, POCKETCI_STATE_DIR: stateDir };
  const args = ["run", `${dir}/pipeline.ts`, "--secret", "TOK", "--secret", "DIRSECRET"];
  const never = forbidden();
  let logDir = "";
  for (const mode of [[], ["--json"]]) {
    const result = await runCli([...args, ...mode, "--", Deno.execPath()], { env });
    const printed = result.stdout + result.stderr;
    assert.equal(result.code, 0, printed);
    for (const label of ["raw", "url", "form", "json", "basic", "b64a", "b64b", "b64c", "b64url"]) {
      assert.match(printed, new RegExp(`${label}: .*\\*\\*\\*`), `${label} was printed, masked`);
    }
    assert.match(printed, /dir: \*\*\*/);
    // Only inside PocketCI's own paths may the directory's secret show.
    const visible = printed.replaceAll(stateDir, "STATE");
    for (const text of never) assert.ok(!visible.includes(text), `${mode}: ${text}`);
    if (mode.length === 0) {
      // The summary names the real log directory, inside the state directory named after a secret.
      assert.match(result.stderr, new RegExp(`logs: ${stateDir}/\\S+`));
    } else {
      const events = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
      const start = events.find((event) => event.type === "run.start");
      const end = events.find((event) => event.type === "run.end");
      assert.ok(start.logDir.startsWith(`${stateDir}/`), start.logDir);
      assert.equal(end.logDir, start.logDir);
      logDir = start.logDir;
    }
  }
  const logs = await filesUnder(logDir);
  assert.ok(logs.length >= 2, logs.join(" "));
  for (const file of logs) {
    const text = (await Deno.readTextFile(file)).replaceAll(stateDir, "STATE");
    assert.match(text, /\*\*\*/, file);
    for (const value of never) assert.ok(!text.includes(value), `${value} in ${file}`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run: a secret shorter than 6 characters is refused unless --allow-short-secrets, then masked with a warning", async () => {
  const dir = await tempProject({
    "pipeline.ts": `
import { pipeline, secret, task } from "pocketci";
export default pipeline("short", async () => {
  await task("box").env({ S: secret("SHORT") }).sh('echo "the x-ray box $S"');
});`,
  });
  const env = { SHORT: "x-r", POCKETCI_STATE_DIR: `${dir}/.state` };
  const refused = await runCli(["run", `${dir}/pipeline.ts`, "--secret", "SHORT"], { env });
  assert.equal(refused.code, 2, refused.stderr);
  assert.equal(refused.stdout, "");
  assert.match(
    refused.stderr,
    /^pocketci run: secret SHORT is shorter than 6 characters, too short to mask reliably .*--allow-short-secrets\n$/,
  );
  assert.ok(!refused.stderr.includes("x-r"));
  const allowed = await runCli(
    ["run", `${dir}/pipeline.ts`, "--secret", "SHORT", "--allow-short-secrets"],
    { env },
  );
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.match(allowed.stderr, /warning: secret SHORT is shorter than 6 characters/);
  assert.match(allowed.stdout, /box \| the \*\*\*ay box \*\*\*/);
  await Deno.remove(dir, { recursive: true });
});
