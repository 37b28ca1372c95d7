import assert from "node:assert/strict";
import { vfkitArgs, vmSpec } from "./vm_spec.ts";
import { vzConfig } from "./config.ts";
import { startScript, userData } from "./guest_boot.ts";
import { agentModules, copyAgentSources } from "./agent_files.ts";
import { cachedDenoPath, denoCandidates, denoPackage, extractDeno } from "./guest_deno.ts";
import { ENTITLEMENT_MESSAGE, monitorError, requireMacos } from "./host.ts";
import { vzPlatformMessage } from "./platform.ts";
import { ensureRawImage, imageFormat, writableCopy } from "./image.ts";
import { metaData, writeSeedIso } from "./seed.ts";
import { notImplementedMessage } from "../registry.ts";
import { unavailableFactory } from "../unavailable.ts";
import { vzFactory, vzPermissions } from "./factory.ts";
import { DriverError } from "../contract.ts";
import { createTarStream } from "../archive/mod.ts";
import { createTestContext } from "../../tests/conformance/context.ts";

const CI = Deno.env.get("CI") === "true";

async function has(tool: string): Promise<boolean> {
  const out = await new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" })
    .output().catch(() => undefined);
  return out !== undefined;
}

Deno.test("vz: the configuration takes the DSN values and the spec's defaults", () => {
  assert.deepEqual(vzConfig({}, "/home/u"), {
    memory: 2048,
    cpus: 2,
    cacheDir: "/home/u/.cache/ci/vz",
  });
  assert.equal(
    vzConfig({ cache_dir: "~/.cache/ci/vz" }, "/home/u").cacheDir,
    "/home/u/.cache/ci/vz",
  );
  assert.deepEqual(vzConfig({ memory: 4096, cpus: 4, cache_dir: "/c", image: "/i.raw" }), {
    memory: 4096,
    cpus: 4,
    cacheDir: "/c",
    image: "/i.raw",
  });
});

Deno.test("vz: the VM spec and the vfkit command line hold every device", () => {
  const spec = vmSpec(vzConfig({ memory: 3072, cpus: 3 }), "/run/vz");
  assert.deepEqual(spec, {
    cpus: 3,
    memoryMiB: 3072,
    disk: "/run/vz/disk.raw",
    seedIso: "/run/vz/seed.iso",
    efiVariableStore: "/run/vz/efi-variable-store",
    shares: [{ tag: "volumes", hostPath: "/run/vz/share" }],
    vsock: { port: 1024, socket: "/run/vz/agent.sock" },
    consoleLog: "/run/vz/console.log",
    controlSocket: "/run/vz/vfkit.sock",
  });
  assert.deepEqual(vfkitArgs(spec), [
    "--cpus",
    "3",
    "--memory",
    "3072",
    "--bootloader",
    "efi,variable-store=/run/vz/efi-variable-store,create",
    "--device",
    "virtio-blk,path=/run/vz/disk.raw",
    "--device",
    "virtio-blk,path=/run/vz/seed.iso",
    "--device",
    "virtio-fs,sharedDir=/run/vz/share,mountTag=volumes",
    "--device",
    "virtio-vsock,port=1024,socketURL=/run/vz/agent.sock,listen",
    "--device",
    "virtio-net,nat",
    "--device",
    "virtio-rng",
    "--device",
    "virtio-serial,logFilePath=/run/vz/console.log",
    "--restful-uri",
    "unix:///run/vz/vfkit.sock",
  ]);
  assert.throws(() => vfkitArgs({ ...spec, cpus: 0 }), /vz: cpus=0 must be a whole number/);
  assert.throws(
    () => vfkitArgs({ ...spec, memoryMiB: 100 }),
    /vz: memory=100 must be at least 256/,
  );
});

Deno.test("vz: the start script mounts the share and runs the agent from it", async () => {
  const vsock = startScript({ mount: "virtiofs" });
  assert.match(
    vsock,
    /grep -qs " \/mnt\/volumes " \/proc\/mounts \|\| mount -t virtiofs volumes \/mnt\/volumes/,
  );
  assert.match(vsock, /--listen='vsock:1024'/);
  assert.match(vsock, /--unstable-vsock/);
  assert.doesNotMatch(vsock, /virtio-ports/);
  const serial = startScript({ mount: "9p", serialPort: "org.pocketci.agent.0" });
  assert.match(serial, /mount -t 9p -o trans=virtio/);
  assert.match(serial, /--listen='stdio'/);
  assert.match(serial, /exec <>"\$port" >&0/);
  // The script is valid sh.
  const check = await new Deno.Command("sh", { args: ["-n", "-c", serial] }).output();
  assert.equal(check.code, 0, new TextDecoder().decode(check.stderr));
  const data = userData();
  assert.match(data, /^#cloud-config\n/);
  assert.match(data, /ExecStart=\/bin\/sh \/mnt\/volumes\/\.pocketci-agent\/start\.sh/);
  assert.match(data, /systemctl, enable, --now, pocketci-agent\.service/);
  assert.equal(metaData("i-1"), "instance-id: i-1\nlocal-hostname: pocketci\n");
});

Deno.test("vz: the agent's sources for the guest are its local module graph, nothing from npm", async () => {
  const modules = await agentModules();
  for (
    const needed of [
      "agent/main.ts",
      "agent/session.ts",
      "drivers/native/process_group.ts",
      "drivers/archive/extract.ts",
    ]
  ) {
    assert.ok(modules.includes(needed), `${needed} missing from ${modules.join(", ")}`);
  }
  assert.ok(!modules.some((m) => m.startsWith("drivers/agent_client/")), "host code in the guest");
  const dir = await Deno.makeTempDir();
  try {
    await copyAgentSources(dir);
    // The copy runs on its own: deno checks its graph from the copied files alone.
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--no-config", `${dir}/agent/main.ts`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vz: the guest's Deno comes from @deno/linux-*-glibc (node_modules, cache, npm pack)", async () => {
  assert.equal(denoPackage("aarch64"), "@deno/linux-arm64-glibc");
  assert.equal(denoPackage("x86_64"), "@deno/linux-x64-glibc");
  assert.equal(cachedDenoPath("/c", "2.9.6", "aarch64"), "/c/deno-2.9.6-linux-aarch64/deno");
  assert.deepEqual(denoCandidates("/c", "2.9.6", "x86_64", "/repo/"), [
    "/repo/node_modules/@deno/linux-x64-glibc/deno",
    "/c/deno-2.9.6-linux-x86_64/deno",
  ]);
  // extractDeno takes package/deno out of an npm tarball.
  const dir = await Deno.makeTempDir();
  try {
    const body = new TextEncoder().encode("#!/bin/sh\necho fake deno\n");
    const tar = createTarStream([
      {
        path: "package/package.json",
        type: "file",
        mode: 0o644,
        size: 2,
        mtime: 0,
        body: new TextEncoder().encode("{}"),
      },
      { path: "package/deno", type: "file", mode: 0o755, size: body.length, mtime: 0, body },
    ]);
    const tgz = `${dir}/p.tgz`;
    await Deno.writeFile(
      tgz,
      tar.pipeThrough(
        new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
      ),
    );
    await extractDeno(tgz, `${dir}/deno`);
    assert.deepEqual(await Deno.readFile(`${dir}/deno`), body);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vz: one-line errors on a host that is not macOS and without the entitlement", async () => {
  const message = vzPlatformMessage("linux")!;
  assert.equal(
    message,
    "the vz driver needs macOS (Apple Virtualization.framework) and this host runs linux; use --driver=qemu or --driver=docker here",
  );
  assert.equal(vzPlatformMessage("darwin"), undefined);
  assert.throws(
    () => requireMacos("linux"),
    (e: unknown) => e instanceof DriverError && e.message === message,
  );
  if (Deno.build.os !== "darwin") {
    assert.equal(notImplementedMessage("vz"), message);
    const context = await createTestContext();
    try {
      await assert.rejects(
        () => unavailableFactory("vz").create({}, context),
        (e: unknown) => e instanceof DriverError && e.message === message,
      );
      // The driver itself (not registered yet) refuses the same way before touching anything.
      await assert.rejects(
        () => vzFactory.create({}, context),
        (e: unknown) => e instanceof DriverError && e.message === message,
      );
      assert.deepEqual(await Array.fromAsync(Deno.readDir(context.runDir)), []);
    } finally {
      await context.dispose();
    }
  }
  const entitlement = monitorError(
    "vfkit",
    'time=x level=fatal msg="Error Domain=VZErrorDomain Code=2 ... com.apple.security.virtualization entitlement"',
  );
  assert.ok(entitlement.message.startsWith(ENTITLEMENT_MESSAGE));
  assert.match(entitlement.message, /codesign -s - -f --entitlements entitlements\.plist vfkit$/);
  assert.ok(!entitlement.message.includes("\n"));
  assert.equal(
    monitorError("vfkit", "a\nlast line\n").message,
    "vfkit could not start the VM: last line",
  );
});

Deno.test("vz: the CLI refuses --driver=vz on this host in one line", async () => {
  if (Deno.build.os === "darwin") return;
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/pipeline.ts`, 'import { task } from "pocketci";\n');
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../../pocketci.ts", import.meta.url).pathname,
        "run",
        "--driver=vz",
        "pipeline.ts",
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    assert.equal(stderr, `pocketci run: ${vzPlatformMessage()}`);
    assert.equal(out.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vz: a qcow2 base is converted to raw once (cached) and each VM gets a writable copy", async () => {
  if (!(await has("qemu-img"))) {
    if (CI) throw new Error("qemu-img is missing; run .ci/setup_qemu.sh");
    return;
  }
  const dir = await Deno.makeTempDir();
  try {
    const base = `${dir}/base.qcow2`;
    await new Deno.Command("qemu-img", { args: ["create", "-q", "-f", "qcow2", base, "8M"] })
      .output();
    const raw = await ensureRawImage(base, `${dir}/cache`);
    assert.equal(await imageFormat(raw), "raw");
    assert.equal((await Deno.stat(raw)).size, 8 * 1024 * 1024);
    assert.equal(await ensureRawImage(base, `${dir}/cache`), raw, "the conversion was not cached");
    assert.equal(await ensureRawImage(raw, `${dir}/cache`), raw, "a raw image is used as it is");
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(`${dir}/cache`))).map((e) => e.name),
      [raw.slice(raw.lastIndexOf("/") + 1)],
      "a temporary file was left in the cache",
    );
    await writableCopy(raw, `${dir}/disk.raw`);
    const file = await Deno.open(`${dir}/disk.raw`, { write: true });
    await file.write(new Uint8Array([1, 2, 3]));
    file.close();
    const original = await Deno.open(raw);
    const head = new Uint8Array(3);
    await original.read(head);
    original.close();
    assert.deepEqual(head, new Uint8Array(3), "writing the copy changed the base");
    await assert.rejects(
      () => ensureRawImage(`${dir}/missing.qcow2`, `${dir}/cache`),
      /vz: image=.*missing\.qcow2 does not exist/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vz: the seed ISO carries meta-data and user-data under the cidata label", async () => {
  if (!(await has("genisoimage")) && !(await has("xorriso"))) {
    if (CI) throw new Error("no ISO tool; run .ci/setup_qemu.sh");
    return;
  }
  const dir = await Deno.makeTempDir();
  try {
    await writeSeedIso(`${dir}/seed.iso`, "pocketci-run-1", userData());
    const iso = await Deno.readFile(`${dir}/seed.iso`);
    const text = new TextDecoder("latin1").decode(iso);
    assert.match(text, /cidata/i);
    assert.ok(text.includes("instance-id: pocketci-run-1"));
    assert.ok(text.includes("pocketci-agent.service"));
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["seed.iso"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vz: permissions name vfkit and the cache, never FFI", () => {
  const needs = vzPermissions({ cache_dir: "/c", image: "/i.raw" });
  assert.deepEqual(needs.map((n) => n.permission), ["run", "read", "write"]);
  assert.ok((needs[0].values as string[]).includes("vfkit"));
  assert.deepEqual(needs[1].values, ["/c", "/i.raw"]);
  assert.ok(vzPermissions({ cache_dir: "/c" }).some((n) => n.permission === "net"));
});
