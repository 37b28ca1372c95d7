import assert from "node:assert/strict";
import { DriverError } from "../contract.ts";
import { GroupProcess, lookupExecutable, toExitStatus } from "./process_group.ts";

Deno.test("lookupExecutable finds commands like a shell does", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-lookup-" });
  try {
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(`${dir}/bin/tool`, "#!/bin/sh\necho tool\n");
    await Deno.chmod(`${dir}/bin/tool`, 0o755);
    await Deno.writeTextFile(`${dir}/bin/plain`, "not executable");
    await Deno.mkdir(`${dir}/bin/adir`);
    const path = `${dir}/bin:/usr/bin:/bin`;
    assert.deepEqual(lookupExecutable("tool", path, "/"), {
      kind: "found",
      path: `${dir}/bin/tool`,
    });
    assert.deepEqual(lookupExecutable("plain", path, "/"), { kind: "not_executable" });
    assert.deepEqual(lookupExecutable("adir", path, "/"), { kind: "missing" });
    assert.deepEqual(lookupExecutable("no-such-tool-xyz", path, "/"), { kind: "missing" });
    assert.deepEqual(lookupExecutable("./bin/tool", path, dir), {
      kind: "found",
      path: `${dir}/./bin/tool`,
    });
    assert.deepEqual(lookupExecutable("tool", ":/usr/bin", `${dir}/bin`), {
      kind: "found",
      path: `${dir}/bin/tool`,
    });
    assert.deepEqual(lookupExecutable("tool", "relative/bin:/usr/bin", "/"), { kind: "unknown" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("commands found once are remembered, unless the lookup depends on the working directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-lookup-cache-" });
  try {
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(`${dir}/bin/tool`, "#!/bin/sh\necho tool\n");
    await Deno.chmod(`${dir}/bin/tool`, 0o755);
    const found = new Map<string, string>();
    const run = async (command: string[], path: string) => {
      const child = GroupProcess.spawn({ command, cwd: dir, env: { PATH: path }, found });
      return await child.wait();
    };
    const path = `${dir}/bin:/usr/bin:/bin`;
    assert.deepEqual(await run(["tool"], path), { code: 0 });
    assert.deepEqual(await run(["/bin/true"], path), { code: 0 });
    assert.deepEqual(await run(["./bin/tool"], path), { code: 0 });
    assert.deepEqual(await run(["tool"], `bin:${path}`), { code: 0 });
    assert.deepEqual(await run(["tool"], `:${path}`), { code: 0 });
    assert.deepEqual([...found], [
      [`${path}\0tool`, `${dir}/bin/tool`],
      ["\0/bin/true", "/bin/true"],
    ]);
    // A remembered command is not looked up again: once removed, it fails to start
    // (setsid's exit code) instead of being reported as not found.
    await Deno.remove(`${dir}/bin/tool`);
    assert.deepEqual(await run(["tool"], path), { code: 127 });
    assert.throws(
      () => GroupProcess.spawn({ command: ["tool"], cwd: dir, env: { PATH: path } }),
      (error: unknown) => error instanceof DriverError && error.code === "command_not_found",
    );
    assert.throws(
      () => GroupProcess.spawn({ command: ["./bin/tool"], cwd: dir, env: { PATH: path }, found }),
      (error: unknown) => error instanceof DriverError && error.code === "command_not_found",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a process group is started with and without the setsid fast path", async () => {
  for (const path of ["/usr/bin:/bin", "relative-entry:/usr/bin:/bin"]) {
    const chunks: string[] = [];
    const child = GroupProcess.spawn({
      command: ["sh", "-c", "cat /proc/$$/stat; exit 5"],
      cwd: "/",
      env: { PATH: path },
    });
    child.addSink((_stream, chunk) => chunks.push(new TextDecoder().decode(chunk)), false);
    assert.deepEqual(await child.wait(), { code: 5 });
    const stat = chunks.join("");
    const [, , pgrp, session] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    assert.deepEqual([pgrp, session], [String(child.pid), String(child.pid)], path);
  }
});

Deno.test("an existing file that is not executable is command_not_found with a clear message", async () => {
  const file = await Deno.makeTempFile({ prefix: "pocketci-noexec-" });
  try {
    assert.throws(
      () => GroupProcess.spawn({ command: [file], cwd: "/", env: { PATH: "/usr/bin:/bin" } }),
      (error: unknown) =>
        error instanceof DriverError && error.code === "command_not_found" &&
        error.message.includes("cannot be executed"),
    );
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("exit statuses map signals to 128+N", () => {
  assert.deepEqual(toExitStatus({ success: true, code: 0, signal: null }), { code: 0 });
  assert.deepEqual(toExitStatus({ success: false, code: 3, signal: null }), { code: 3 });
  assert.deepEqual(toExitStatus({ success: false, code: 137, signal: "SIGKILL" }), {
    code: 137,
    signal: 9,
  });
  assert.deepEqual(toExitStatus({ success: false, code: 143, signal: "SIGTERM" }), {
    code: 143,
    signal: 15,
  });
});
