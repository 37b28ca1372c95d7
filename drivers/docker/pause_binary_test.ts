import assert from "node:assert/strict";
import { isPauseArch, type PauseArch, pauseBinary } from "./pause_binary.ts";

const inCi = Deno.env.get("CI") === "true";

/** How to run a pause program of `arch` on this machine: natively, under qemu-user, or not at all. */
function runnerFor(arch: PauseArch): string[] | undefined {
  const native = Deno.build.arch === (arch === "amd64" ? "x86_64" : "aarch64");
  if (native) return [];
  const emulator = `qemu-${arch === "amd64" ? "x86_64" : "aarch64"}-static`;
  try {
    Deno.statSync(`/usr/bin/${emulator}`);
    return [`/usr/bin/${emulator}`];
  } catch {
    return undefined;
  }
}

for (const arch of ["amd64", "arm64"] as const) {
  const runner = runnerFor(arch);
  Deno.test({
    name: `pause program (${arch}): sleeps without using the CPU until it is killed`,
    // CI installs qemu-user-static, so both run there; elsewhere a missing emulator skips one.
    ignore: runner === undefined && !inCi,
    async fn() {
      assert.ok(runner, `qemu-user-static is needed to run the ${arch} pause program here`);
      const dir = await Deno.makeTempDir();
      try {
        const path = `${dir}/pause`;
        await Deno.writeFile(path, pauseBinary(arch), { mode: 0o755 });
        const [command, ...args] = [...runner, path];
        const child = new Deno.Command(command, { args, stdout: "null", stderr: "piped" }).spawn();
        await new Promise((r) => setTimeout(r, 700));
        const stat = await Deno.readTextFile(`/proc/${child.pid}/stat`);
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        // Sleeping (S), and at most a few clock ticks of CPU (qemu's own start-up included).
        assert.equal(fields[0], "S", `state ${fields[0]}`);
        assert.ok(Number(fields[11]) + Number(fields[12]) < 40, `cpu ticks ${fields[11]}`);
        child.kill("SIGKILL");
        const status = await child.status;
        assert.equal(status.signal, "SIGKILL");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test("pause program: ELF headers name the machine and an entry point inside the file", () => {
  for (const [arch, machine] of [["amd64", 0x3e], ["arm64", 0xb7]] as const) {
    const bytes = pauseBinary(arch);
    const view = new DataView(bytes.buffer);
    assert.deepEqual([...bytes.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
    assert.equal(view.getUint16(18, true), machine);
    const entry = Number(view.getBigUint64(24, true)) - 0x400000;
    assert.ok(entry >= 176 && entry < bytes.length, `entry offset ${entry}`);
    // The second program header asks for a non-executable stack.
    assert.equal(view.getUint16(56, true), 2);
    assert.equal(view.getUint32(64 + 56, true), 0x6474e551);
    assert.equal(view.getUint32(64 + 56 + 4, true) & 1, 0);
  }
  assert.equal(isPauseArch("amd64"), true);
  assert.equal(isPauseArch("s390x"), false);
});
