import assert from "node:assert/strict";
import {
  cache,
  pipeline,
  sandbox,
  secret,
  task,
  TaskError,
  type TaskResult,
  volume,
} from "./mod.ts";
import { type ExecRequest, installHost, type PipelineHost, type TaskRequest } from "./host.ts";
import { parseDurationMs, parseMemoryBytes } from "./parse.ts";
import { SH_PRELUDE } from "./config.ts";
import { pipelineFromModule } from "./pipeline.ts";

function result(
  request: { name?: string },
  status: TaskResult["status"],
  code: number | null,
): TaskResult {
  return {
    name: request.name ?? "exec",
    id: "id-1",
    code,
    stdout: "",
    stderr: "",
    status,
    durationMs: 1,
    attempts: 1,
  };
}

/** A host that records requests and answers with a scripted status. */
function fakeHost(status: TaskResult["status"] = "success", code: number | null = 0) {
  const tasks: TaskRequest[] = [];
  const execs: ExecRequest[] = [];
  const closed: string[] = [];
  const host: PipelineHost = {
    runTask: (request, onOutput) => {
      tasks.push(request);
      onOutput?.("stdout", "chunk");
      return Promise.resolve(result(request, status, code));
    },
    createVolume: (request) =>
      Promise.resolve({ id: `v-${request.name}`, name: request.name, kind: request.kind }),
    readFiles: () => Promise.resolve({}),
    readFile: () => Promise.resolve(new Uint8Array()),
    writeFiles: () => Promise.resolve(),
    exportTo: () => Promise.resolve(),
    startSandbox: (request) => Promise.resolve({ id: "sb-1", name: request.name }),
    execSandbox: (_id, request) => {
      execs.push(request);
      return Promise.resolve(result({}, status, code));
    },
    closeSandbox: (id) => {
      closed.push(id);
      return Promise.resolve();
    },
    hashFiles: (patterns) => Promise.resolve(`hash-of-${patterns.join(",")}`),
    startService: (request) => Promise.resolve({ id: "svc-1", name: request.name, hostPorts: {} }),
    stopService: () => Promise.resolve(),
    serviceLogs: () => Promise.resolve(""),
    startGroup: () => Promise.resolve({ id: "group-1" }),
    endGroup: () => Promise.resolve(),
  };
  installHost(host);
  return { tasks, execs, closed };
}

Deno.test("builders are immutable: a partial builder is a reusable template", async () => {
  const { tasks } = fakeHost();
  const base = task("t").image("busybox").env({ A: "1" });
  const withB = base.env({ B: "2" });
  await base.run("echo", "a");
  await withB.workDir("sub").sh("echo b");
  assert.deepEqual(tasks[0].env, { A: "1" });
  assert.equal(tasks[0].workDir, undefined);
  assert.deepEqual(tasks[0].command, ["echo", "a"]);
  assert.deepEqual(tasks[1].env, { A: "1", B: "2" });
  assert.equal(tasks[1].workDir, "sub");
  assert.deepEqual(tasks[1].command, ["sh", "-c", SH_PRELUDE + "echo b"]);
  assert.ok(Object.isFrozen(base));
});

Deno.test("builder methods map to the request (limits, mounts, stdin, container options)", async () => {
  const { tasks } = fakeHost();
  const src = await volume("src", { from: ".", exclude: ["node_modules"] });
  const deps = await cache("npm");
  await task("full").image("node:22").mount(src, "src").mount(deps, "/root/.npm").stdin("in")
    .user("nobody").privileged().limits({ cpu: 0.5, memory: "512Mi" }).timeout("1m30s")
    .pull("always").platform("linux/amd64").entrypoint("/bin/sh", "-c").allowFailure()
    .env({ TOKEN: secret("TOKEN") }).run("true");
  const request = tasks[0];
  assert.deepEqual(request.mounts, [
    { volumeId: "v-src", path: "src" },
    { volumeId: "v-npm", path: "/root/.npm" },
  ]);
  assert.equal(new TextDecoder().decode(request.stdin), "in");
  assert.equal(request.user, "nobody");
  assert.equal(request.privileged, true);
  assert.equal(request.cpu, 0.5);
  assert.equal(request.memoryBytes, 512 * 1024 * 1024);
  assert.equal(request.timeoutMs, 90_000);
  assert.equal(request.pull, "always");
  assert.equal(request.platform, "linux/amd64");
  assert.deepEqual(request.entrypoint, ["/bin/sh", "-c"]);
  assert.equal(request.allowFailure, true);
  assert.deepEqual(
    request.env,
    { TOKEN: { pocketciSecret: "TOKEN" } },
    "secrets cross as references",
  );
});

Deno.test("statuses: failure and timeout reject unless allowed; cancelled and error always reject", async () => {
  for (const [status, code] of [["failure", 3], ["timeout", 143]] as const) {
    fakeHost(status, code);
    await assert.rejects(
      task("t").run("x"),
      (error: unknown) => error instanceof TaskError && error.result.status === status,
    );
    assert.equal((await task("t").allowFailure().run("x")).status, status);
  }
  for (const status of ["cancelled", "error"] as const) {
    fakeHost(status, null);
    await assert.rejects(task("t").allowFailure().run("x"), TaskError);
  }
  fakeHost("failure", 7);
  await assert.rejects(task("named").run("x"), /task "named" failed with exit code 7/);
});

Deno.test("sandbox calls: per-call settings do not leak; derived builders do not own the sandbox", async () => {
  const { execs, closed } = fakeHost();
  const box = await sandbox("dev").image("busybox").timeout("5s").start();
  const tmp = box.env({ X: "1" }).workDir("/tmp").stdin("data").allowFailure();
  await tmp.sh("echo");
  await box.run("ls");
  assert.deepEqual(execs[0].env, { X: "1" });
  assert.equal(execs[0].workDir, "/tmp");
  assert.equal(execs[0].allowFailure, true);
  assert.equal(execs[0].timeoutMs, 5000, "the sandbox builder's timeout is the calls' default");
  assert.deepEqual(execs[1].env, {});
  assert.equal(execs[1].workDir, undefined);
  assert.equal("close" in tmp, false);
  await box[Symbol.asyncDispose]();
  assert.deepEqual(closed, ["sb-1"]);
});

Deno.test("onOutput receives chunks", async () => {
  fakeHost();
  const chunks: string[] = [];
  await task("t").onOutput((_stream, chunk) => chunks.push(chunk)).run("x");
  assert.deepEqual(chunks, ["chunk"]);
});

Deno.test("bad arguments are one-line errors at the call site", () => {
  assert.throws(() => task(""), /non-empty name/);
  assert.throws(() => task("t").timeout("soon"), /invalid duration "soon"/);
  assert.throws(() => task("t").limits({ memory: "lots" }), /invalid memory "lots"/);
  assert.throws(() => task("t").limits({ cpu: -1 }), /invalid cpu limit/);
  assert.throws(() => task("t").env({ "BAD-NAME": "x" }), /invalid environment variable name/);
  assert.throws(() => task("t").pull("sometimes" as "always"), /pull policy/);
  assert.throws(() => secret("no spaces"), /invalid secret name/);
  assert.rejects(volume("bad name"), /invalid volume name/);
});

Deno.test("durations and memory quantities", () => {
  assert.equal(parseDurationMs("500ms"), 500);
  assert.equal(parseDurationMs("1m30s"), 90_000);
  assert.equal(parseDurationMs("1.5h"), 5_400_000);
  assert.equal(parseDurationMs("7d"), 604_800_000);
  assert.equal(parseDurationMs(250), 250);
  assert.throws(() => parseDurationMs("0s"));
  assert.equal(parseMemoryBytes("1Gi"), 1024 ** 3);
  assert.equal(parseMemoryBytes("512M"), 512e6);
  assert.equal(parseMemoryBytes("512MB"), 512e6);
  assert.equal(parseMemoryBytes(1024), 1024);
});

Deno.test("a pipeline module: pipeline(...) or a plain function as default export", () => {
  const fn = async () => {};
  const declared = pipelineFromModule({ default: pipeline("named", fn) }, "file");
  assert.equal(typeof declared === "object" && declared.name, "named");
  const plain = pipelineFromModule({ default: fn }, "file");
  assert.equal(typeof plain === "object" && plain.name, "file");
  assert.match(String(pipelineFromModule({}, "file")), /no default export/);
});

Deno.test("pipeline(name, { resources }, fn): a sizing hint in cores and bytes, checked", () => {
  const fn = async () => {};
  const hinted = pipeline("big", { resources: { cpu: 4, memory: "8Gi" } }, fn);
  assert.deepEqual(hinted.resources, { cpu: 4, memoryBytes: 8 * 1024 ** 3 });
  assert.equal(hinted.run, fn);
  assert.deepEqual(pipeline("m", { resources: { memory: 512e6 } }, fn).resources, {
    cpu: 0,
    memoryBytes: 512e6,
  });
  assert.equal(pipeline("plain", fn).resources, undefined);
  assert.equal(pipeline("empty", {}, fn).resources, undefined);
  const refused: [() => unknown, RegExp][] = [
    [() => pipeline("x", { resources: { cpu: -1 } }, fn), /invalid pipeline\(\) resources cpu -1/],
    [() => pipeline("x", { resources: { cpu: 1e9 } }, fn), /from 0 to 1024/],
    [() => pipeline("x", { resources: { memory: "lots" } }, fn), /invalid memory "lots"/],
    [() => pipeline("x", { resources: { memory: "100Pi" } }, fn), /invalid memory/],
    [() => pipeline("x", { resources: { memory: "65Ti" } }, fn), /at most 64Ti/],
    [
      () => pipeline("x", { resources: { gpu: 1 } as never }, fn),
      /unknown field gpu: use cpu and memory/,
    ],
    [() => pipeline("x", { timeout: "1m" } as never, fn), /no option timeout/],
    [() => pipeline("x", { resources: {} } as never), /needs a name and a function/],
  ];
  for (const [call, pattern] of refused) assert.throws(call, pattern);
});

Deno.test("outside a run the DSL says how to run the pipeline", async () => {
  installHost(undefined);
  await assert.rejects(task("t").run("x"), /pocketci run/);
});

Deno.test("name() renames a template's copy; the template keeps its name", async () => {
  const { tasks } = fakeHost();
  const base = task("check").image("busybox");
  const lint = base.name("lint");
  await Promise.all([lint.run("true"), base.run("true"), base.name("unit").sh("true")]);
  assert.deepEqual(tasks.map((request) => request.name), ["lint", "check", "unit"]);
  assert.equal(tasks[0].image, "busybox", "the copy keeps every other setting");
  const { execs } = fakeHost();
  const box = await sandbox("dev").name("renamed").start();
  assert.equal(box.name, "renamed");
  await box.run("true");
  assert.equal(execs.length, 1);
  assert.throws(() => base.name(""), /name\(\) needs a non-empty name/);
  assert.throws(() => base.name(42 as unknown as string), /name\(\) needs a non-empty name/);
});

Deno.test("background() marks a task, and a sandbox's calls, as allowed to outlive the pipeline", async () => {
  const { tasks, execs } = fakeHost();
  await task("t").background().run("true");
  await task("t").run("true");
  await task("t").background().background(false).run("true");
  assert.deepEqual(tasks.map((request) => request.background === true), [true, false, false]);
  const box = await sandbox("dev").background().start();
  await box.run("true");
  await sandbox("dev").start().then((plain) => plain.background().sh("true"));
  await sandbox("dev").start().then((plain) => plain.run("true"));
  assert.deepEqual(execs.map((request) => request.background === true), [true, true, false]);
  assert.throws(() => task("t").background("yes" as unknown as boolean), /takes true or false/);
  assert.throws(() => box.background(1 as unknown as boolean), /takes true or false/);
});

Deno.test("sh() puts set -eu (and pipefail where the shell has it) before the script, for tasks and sandbox calls", async () => {
  const { tasks, execs } = fakeHost();
  await task("t").sh("false\necho after");
  const box = await sandbox("dev").start();
  await box.sh("false | true");
  await task("t").run("sh", "-c", "false; echo opt-out");
  assert.deepEqual(tasks[0].command, ["sh", "-c", SH_PRELUDE + "false\necho after"]);
  assert.deepEqual(execs[0].command, ["sh", "-c", SH_PRELUDE + "false | true"]);
  assert.deepEqual(tasks[1].command, ["sh", "-c", "false; echo opt-out"], "run() is untouched");
  assert.ok(!SH_PRELUDE.includes("\n"), "one line, so the script's line numbers stay right");
});

/** Runs `sh -c` the way sh() builds it with the host's /bin/sh. */
async function hostSh(script: string): Promise<{ code: number; stdout: string }> {
  const [command, ...args] = ["sh", "-c", SH_PRELUDE + script];
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "null" })
    .output();
  return { code: output.code, stdout: new TextDecoder().decode(output.stdout) };
}

Deno.test("sh() prelude: a failing line stops the script; an unset variable fails; pipefail where the shell has it", async () => {
  const stopped = await hostSh("echo before\nfalse\necho after");
  assert.equal(stopped.code, 1);
  assert.equal(stopped.stdout, "before\n", "the line after `false` does not run");
  assert.notEqual((await hostSh('echo "$POCKETCI_SURELY_UNSET_VARIABLE"')).code, 0);
  assert.equal((await hostSh("set +e\nfalse\necho opted out")).stdout, "opted out\n");
  const probe = await new Deno.Command("sh", {
    args: ["-c", "(set -o pipefail) 2>/dev/null"],
    stderr: "null",
  }).output();
  // Debian's dash has no pipefail (the pipe's status is its last stage's); busybox and bash do.
  assert.equal((await hostSh("false | true")).code, probe.success ? 1 : 0);
});
