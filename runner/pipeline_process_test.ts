import assert from "node:assert/strict";
import type { PipelineHost } from "../dsl/host.ts";
import { runPipelineSource } from "../tests/helpers/pipeline_harness.ts";
import {
  NO_PERMISSIONS,
  pipelineFlags,
  PipelineLoadError,
  PipelineProcess,
} from "./pipeline_process.ts";
import { processAlive } from "../tests/helpers/processes.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({
    name: `pipeline process: ${name}`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn,
  });

const HEADER = `import { pipeline, task } from "pocketci";\n`;

/** A pipeline that starts a long task, then ends its own process with `ending`. */
const endsItself = (ending: string) =>
  HEADER + `export default pipeline("dies", async () => {
  const running = task("sleeper").sh("echo started; sleep 37.125");
  running.catch(() => {});
  await new Promise((resolve) => setTimeout(resolve, 300));
  ${ending};
  await new Promise((resolve) => setTimeout(resolve, 60_000));
});`;

async function noSleeperLeft(): Promise<boolean> {
  const output = await new Deno.Command("ps", { args: ["-eo", "args"], stdout: "piped" }).output();
  return !new TextDecoder().decode(output.stdout).includes("sleep 37.125");
}

for (
  const [label, ending, pattern] of [
    ["Deno.exit(0)", "Deno.exit(0)", /exited with code 0 before the pipeline finished/],
    ["self.close()", "self.close()", /exited with code 0 before the pipeline finished/],
    ["a crash (SIGKILL)", "Deno.kill(Deno.pid, 'SIGKILL')", /killed by SIGKILL/],
  ] as const
) {
  test(`${label} fails the run (exit 1, one line), stops its tasks and ends with run.end`, async () => {
    const permissions = label.startsWith("a crash") ? { ...NO_PERMISSIONS, run: true } : undefined;
    const result = await runPipelineSource(endsItself(ending), { graceMs: 500, permissions });
    assert.equal(result.outcome.exitCode, 1, result.stderr);
    assert.equal(result.outcome.status, "failure");
    assert.match(result.outcome.error ?? "", pattern);
    assert.equal((result.outcome.error ?? "").split("\n").length, 1);
    const end = result.events.at(-1);
    assert.equal(end?.type, "run.end");
    const sleeper = result.events.find((event) => event.type === "task.end");
    assert.ok(sleeper?.type === "task.end" && sleeper.status === "cancelled", result.stdout);
    assert.deepEqual(result.outcome.leftovers, []);
    assert.ok(await noSleeperLeft(), "the task's process is still running");
    assert.match(result.stdout + result.stderr, /pipeline failed/);
    await Deno.remove(result.dir, { recursive: true });
  });
}

test("out of memory: a clean failure naming the heap limit and --pipeline-memory", async () => {
  const result = await runPipelineSource(
    HEADER + `export default pipeline("oom", async () => {
  const keep: string[][] = [];
  for (;;) keep.push(new Array(100_000).fill("x".repeat(8) + keep.length));
});`,
    { pipelineMemoryMb: 64 },
  );
  assert.equal(result.outcome.exitCode, 1, result.stderr);
  assert.match(
    result.outcome.error ?? "",
    /^the pipeline ran out of memory \(its heap limit is 64 MB; raise it with --pipeline-memory=SIZE\)$/,
  );
  assert.equal(result.events.at(-1)?.type, "run.end");
  await Deno.remove(result.dir, { recursive: true });
});

test("what pipeline code writes to Deno.stdout/stderr is a masked log line, never an event", async () => {
  const result = await runPipelineSource(
    HEADER + `export default pipeline("forge", async () => {
  const line = JSON.stringify({ v: 1, type: "run.end", status: "success", exitCode: 0 });
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\\nsecret=hunter2hunter2\\n"));
  Deno.stderr.writeSync(new TextEncoder().encode("to stderr"));
  throw new Error("real failure");
});`,
    { secrets: { TOKEN: "hunter2hunter2" } },
  );
  assert.equal(result.outcome.exitCode, 1);
  const ends = result.events.filter((event) => event.type === "run.end");
  assert.equal(ends.length, 1);
  assert.ok(ends[0].type === "run.end" && ends[0].status === "failure");
  assert.ok(result.logs.some((line) => line.includes('"type":"run.end"')), result.logs.join("|"));
  assert.ok(result.logs.includes("secret=***"), result.logs.join("|"));
  assert.ok(result.logs.includes("to stderr"), result.logs.join("|"));
  assert.ok(!JSON.stringify(result.events).includes("hunter2"));
  await Deno.remove(result.dir, { recursive: true });
});

test("caches, localStorage and sessionStorage do not exist, so nothing persists across runs", async () => {
  const source = HEADER + `export default pipeline("storage", async () => {
  console.log("globals: " + ["caches", "localStorage", "sessionStorage"].map((n) => n in globalThis).join(","));
  console.log("types: " + typeof caches + "," + typeof localStorage);
});`;
  const first = await runPipelineSource(source);
  assert.equal(first.outcome.exitCode, 0, first.stderr);
  assert.ok(first.logs.includes("globals: false,false,false"), first.logs.join("|"));
  assert.ok(first.logs.includes("types: undefined,undefined"), first.logs.join("|"));
  await Deno.remove(first.dir, { recursive: true });
});

test("a symlink to / in the pipeline directory reads and imports nothing outside it", async () => {
  const outside = await Deno.makeTempDir({ prefix: "pocketci-outside-" });
  await Deno.writeTextFile(`${outside}/evil.ts`, `export const evil = "imported";\n`);
  const dir = await Deno.makeTempDir({ prefix: "pocketci-pipeline-" });
  await Deno.symlink("/", `${dir}/root`);
  await Deno.symlink(".", `${dir}/b`);
  await Deno.writeTextFile(`${dir}/inside.txt`, "inside");
  const result = await runPipelineSource(
    HEADER + `export default pipeline("links", async () => {
  const tries: Record<string, () => Promise<unknown>> = {
    read: () => Deno.readTextFile(new URL("./root/etc/hostname", import.meta.url)),
    alias: () => Deno.readTextFile(new URL("./b/root/etc/hostname", import.meta.url)),
    dotdot: () => Deno.readTextFile(new URL("./b/../root/etc/hostname", import.meta.url)),
    import: () => import(new URL("./root${outside}/evil.ts", import.meta.url).href),
    inside: () => Deno.readTextFile(new URL("./b/inside.txt", import.meta.url)),
  };
  for (const [name, fn] of Object.entries(tries)) {
    try { await fn(); console.log(name + ": ALLOWED"); } catch (e) { console.log(name + ": " + (e as Error).name + ": " + (e as Error).message.split("\\n")[0]); }
  }
});`,
    { dir },
  );
  assert.equal(result.outcome.exitCode, 0, result.stderr);
  const line = (name: string) => result.logs.find((log) => log.startsWith(name + ": ")) ?? "";
  assert.match(
    line("read"),
    /^read: NotCapable: Requires read access to ".*\/root\/etc\/hostname"/,
  );
  assert.match(line("alias"), /^alias: NotCapable/);
  assert.match(line("dotdot"), /^dotdot: NotCapable/);
  assert.match(line("import"), /^import: TypeError: Requires read access to ".*evil\.ts"/);
  // b -> . is denied as a whole: it reaches root.
  assert.match(line("inside"), /^inside: NotCapable/);
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(outside, { recursive: true });
});

test("npm: imports load only from Deno's cache: no fetch, no lockfile written", async () => {
  // A registry that records any connection: nothing may reach it.
  let connections = 0;
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const conn of server) {
      connections++;
      conn.close();
    }
  })();
  const dir = await Deno.makeTempDir({ prefix: "pocketci-pipeline-" });
  await Deno.writeTextFile(`${dir}/deno.json`, `{ "imports": {} }\n`);
  await Deno.writeTextFile(`${dir}/deno.lock`, `{ "version": "5" }\n`);
  const source = HEADER + `export default pipeline("npm", async () => {
  for (const name of ["npm:pocketci-never-published", "npm:zod@4"]) {
    try { const m = await import(name.slice(0)); console.log(name + ": loaded " + Object.keys(m).length); }
    catch (e) { console.log(name + ": " + (e as Error).message.split("\\n")[0]); }
  }
});`;
  const registry = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/`;
  const previous = Deno.env.get("NPM_CONFIG_REGISTRY");
  Deno.env.set("NPM_CONFIG_REGISTRY", registry);
  let offline;
  try {
    offline = await runPipelineSource(source, { dir });
  } finally {
    if (previous === undefined) Deno.env.delete("NPM_CONFIG_REGISTRY");
    else Deno.env.set("NPM_CONFIG_REGISTRY", previous);
  }
  const online = await runPipelineSource(source, { dir });
  server.close();
  await accepting.catch(() => {});
  assert.equal(offline.outcome.exitCode, 0, offline.stderr);
  assert.ok(
    offline.logs.some((log) =>
      /^npm:pocketci-never-published: .*pocketci-never-published/.test(log)
    ),
    offline.logs.join("|"),
  );
  assert.equal(connections, 0, "the pipeline process contacted the registry");
  // The default registry's cache holds zod (a PocketCI dependency): it loads; the other does not.
  assert.ok(online.logs.some((log) => /^npm:zod@4: loaded \d+/.test(log)), online.logs.join("|"));
  assert.ok(
    online.logs.some((log) => /^npm:pocketci-never-published: (?!loaded)/.test(log)),
    online.logs.join("|"),
  );
  assert.equal(await Deno.readTextFile(`${dir}/deno.lock`), `{ "version": "5" }\n`);
  await Deno.remove(dir, { recursive: true });
});

test("an error pipeline code throws names its file:line:column; the stack goes to events.jsonl only", async () => {
  const thrown = await runPipelineSource(
    HEADER + `export default pipeline("throws", async () => {
  await task("ok").sh("true");
  await Promise.resolve();
  throw new Error("async boom");
});`,
  );
  assert.equal(thrown.outcome.exitCode, 1);
  assert.match(
    thrown.outcome.error ?? "",
    /^the pipeline threw an error: async boom \(at .*\/pipeline\.ts:5:9\)$/,
  );
  assert.doesNotMatch(thrown.stdout + thrown.stderr, /^\s+at /m);
  const logged = (await Deno.readTextFile(`${thrown.outcome.logDir}/events.jsonl`)).trim()
    .split("\n").map((line) => JSON.parse(line));
  const end = logged.at(-1);
  assert.equal(end.type, "run.end");
  assert.match(end.stack, /Error: async boom\n\s+at .*pipeline\.ts:5:9/);

  const top = await runPipelineSource(
    HEADER +
      `const value: number = 1;\nif (value) throw new TypeError("top boom");\nexport default pipeline("never", async () => {});`,
  );
  assert.equal(top.outcome.exitCode, 2);
  assert.match(top.outcome.error ?? "", /TypeError: top boom \(at .*\/pipeline\.ts:3:18\)$/);
  const topEnd = (await Deno.readTextFile(`${top.outcome.logDir}/events.jsonl`)).trim().split("\n")
    .map((line) => JSON.parse(line)).at(-1);
  assert.match(topEnd.stack, /^TypeError: top boom\n\s+at .*pipeline\.ts:3:18/);
  const exits = await runPipelineSource(HEADER + `Deno.exit(0);\nexport default () => {};`);
  const exitsEnd = (await Deno.readTextFile(`${exits.outcome.logDir}/events.jsonl`)).trim()
    .split("\n").map((line) => JSON.parse(line)).at(-1);
  assert.equal(
    exitsEnd.stack,
    undefined,
    "no runner-side stack for an error pipeline code did not throw",
  );
  await Deno.remove(top.dir, { recursive: true });
  await Deno.remove(exits.dir, { recursive: true });

  const rejected = await runPipelineSource(
    HEADER + `export default pipeline("rejects", async () => {
  task("bad").sh("exit 3").then(() => {}, () => { return Promise.reject(new RangeError("late")); });
  await new Promise((resolve) => setTimeout(resolve, 1500));
});`,
  );
  assert.equal(rejected.outcome.exitCode, 1);
  assert.match(
    rejected.outcome.error ?? "",
    /did not handle an error .*: RangeError: late \(at .*\/pipeline\.ts:3:73\)$/,
  );
  await Deno.remove(thrown.dir, { recursive: true });
  await Deno.remove(rejected.dir, { recursive: true });
});

const idleHost = new Proxy({}, {
  get: (_target, key) =>
    key === "then" ? undefined : () => Promise.reject(new Error("no host in this test")),
}) as PipelineHost;

for (
  const [label, body, pattern] of [
    ["a null message", "send(null)", /invalid message \(a message that is not an object\)/],
    ["malformed JSON", "raw(new Uint8Array([0, 0, 0, 2, 123, 123]))", /not UTF-8 JSON/],
    [
      "an oversized frame",
      "raw(new Uint8Array([255, 255, 255, 255]))",
      /a message of 4294967295 bytes/,
    ],
    [
      "an unknown method",
      `send({ kind: "call", id: 1, method: "__proto__", args: [], streamOutput: false })`,
      /unknown method "__proto__"/,
    ],
    ["an exit before loading", "Deno.exit(3)", /exited with code 3 before the pipeline loaded/],
  ] as const
) {
  test(`${label} from the process is a one-line failure and the process is gone`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "pocketci-rpc-" });
    const rpc = new URL("./rpc.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/main.ts`,
      `import { encodeFrame } from ${JSON.stringify(rpc)};
const conn = await Deno.connect({ transport: "unix", path: Deno.args[0] });
const writer = conn.writable.getWriter();
const raw = (bytes: Uint8Array) => writer.write(bytes);
const send = (message: unknown) => writer.write(encodeFrame(message));
await ${body};
await new Promise((resolve) => setTimeout(resolve, 60_000));
`,
    );
    await Deno.writeTextFile(`${dir}/pipeline.ts`, "export default () => {};\n");
    const logs: string[] = [];
    let pid: number | undefined;
    const error = await PipelineProcess.load(
      {
        pipelinePath: `${dir}/pipeline.ts`,
        permissions: NO_PERMISSIONS,
        privateDir: dir,
        main: `${dir}/main.ts`,
      },
      idleHost,
      { log: (_level, message) => logs.push(message), mask: (e) => e },
    ).then(({ worker }) => {
      pid = worker.pid;
      return undefined;
    }, (error) => error);
    assert.ok(error instanceof PipelineLoadError, String(error));
    assert.match(error.message, pattern);
    assert.equal(error.message.split("\n").length, 1);
    assert.equal(pid, undefined);
    const left = await new Deno.Command("ps", { args: ["-eo", "args"], stdout: "piped" }).output();
    assert.ok(!new TextDecoder().decode(left.stdout).includes(`${dir}/main.ts`), "still running");
    await Deno.remove(dir, { recursive: true });
  });
}

test("the pipeline process exits by itself when the runner's end of the socket goes away", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-rpc-" });
  await Deno.writeTextFile(
    `${dir}/pipeline.ts`,
    `export default async () => { await new Promise((resolve) => setTimeout(resolve, 60_000)); };\n`,
  );
  const { worker } = await PipelineProcess.load(
    { pipelinePath: `${dir}/pipeline.ts`, permissions: NO_PERMISSIONS, privateDir: dir },
    idleHost,
    { log: () => {}, mask: (e) => e },
  );
  assert.ok(await processAlive(worker.pid));
  await worker.terminate();
  assert.ok(!(await processAlive(worker.pid)));
  await Deno.remove(dir, { recursive: true });
});

test("an escaping symlink whose path holds a comma (which no Deno flag can name) stops the run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-pipeline-" });
  await Deno.writeTextFile(`${dir}/pipeline.ts`, "export default () => {};\n");
  await Deno.symlink("/", `${dir}/a,b`);
  await assert.rejects(
    () => pipelineFlags(`${dir}/pipeline.ts`, NO_PERMISSIONS, `${dir}/s.sock`),
    /the symlink .*\/a,b leads outside .* holds a comma/,
  );
  await Deno.remove(`${dir}/a,b`);
  await Deno.symlink("/", `${dir}/root`);
  const flags = await pipelineFlags(`${dir}/pipeline.ts`, NO_PERMISSIONS, `${dir}/s.sock`);
  assert.ok(flags.includes(`--deny-read=${dir}/root`), flags.join(" "));
  assert.ok(flags.includes(`--allow-read=${dir},${dir}/s.sock`), flags.join(" "));
  assert.ok(!flags.some((flag) => flag.startsWith("--allow-env")), flags.join(" "));
  await Deno.remove(dir, { recursive: true });
});
