/**
 * One QEMU virtual machine: its private directory (sockets, overlay disk, seed ISO, serial
 * console log), the QEMU process, the QMP monitor and the guest agent channel. Booting
 * prints progress lines with times; a guest whose agent does not answer within the boot
 * timeout is killed and the error carries the last lines of its serial console.
 *
 * @module
 */

import { DriverError } from "../contract.ts";
import type { QemuConfig } from "./config.ts";
import { QgaClient } from "./qga.ts";
import { QmpClient } from "./qmp.ts";
import { makeSeedIso, readSshKeys } from "./seed_iso.ts";

/** A host directory exported to the guest over 9p. */
export interface Share {
  /** The 9p mount tag. */
  readonly tag: string;
  /** The host directory. */
  readonly hostPath: string;
  /** Where the guest mounts it. */
  readonly mountPoint: string;
}

/** What {@link Machine.boot} needs. */
export interface BootOptions {
  /** The driver's settings. */
  readonly config: QemuConfig;
  /** The base image (absent: boot the kernel without a disk). */
  readonly baseImage?: string;
  /** A private directory (mode 0700) for the machine's files; created by the caller. */
  readonly dir: string;
  /** Host directories exported over 9p. */
  readonly shares: readonly Share[];
  /** The cloud-init instance ID. */
  readonly instanceId: string;
  /** Prints one progress line. */
  readonly progress: (line: string) => void;
  /** Called once the QEMU process exists, to record it for `gc`. */
  readonly started: (pid: number) => Promise<void>;
  /** Aborts the boot (the run is being stopped). */
  readonly signal?: AbortSignal;
}

const CONSOLE_LINES = 8;

/** A booted VM with a synchronised guest agent. */
export class Machine {
  /** The guest agent. */
  readonly qga: QgaClient;
  /** The QEMU process ID. */
  readonly pid: number;
  /** The machine's private directory. */
  readonly dir: string;
  /** Whether the 9p shares are mounted in the guest (else: agent-captured output only). */
  readonly sharesMounted: boolean;
  readonly #process: Deno.ChildProcess;
  readonly #qmp: QmpClient;
  readonly #exited: Promise<Deno.CommandStatus>;
  #shutdown: Promise<void> | undefined;

  private constructor(
    process: Deno.ChildProcess,
    exited: Promise<Deno.CommandStatus>,
    qmp: QmpClient,
    qga: QgaClient,
    dir: string,
    sharesMounted: boolean,
  ) {
    this.#process = process;
    this.#exited = exited;
    this.#qmp = qmp;
    this.qga = qga;
    this.pid = process.pid;
    this.dir = dir;
    this.sharesMounted = sharesMounted;
  }

  /** Boots a VM and waits until its agent answers and the shares are mounted. */
  static async boot(options: BootOptions): Promise<Machine> {
    const { config, dir, progress } = options;
    const began = Date.now();
    const deadline = began + config.bootTimeoutMs;
    const seconds = () => `${((Date.now() - began) / 1000).toFixed(1)} s`;
    let disk: string | undefined;
    let seed: string | undefined;
    if (options.baseImage !== undefined) {
      disk = `${dir}/disk.qcow2`;
      await createOverlay(options.baseImage, disk);
      progress(`qemu: overlay on ${options.baseImage} (${seconds()})`);
      const sshKeys = config.sshKey === undefined ? [] : await readSshKeys(config.sshKey);
      seed = await makeSeedIso(dir, options.instanceId, options.shares, sshKeys);
    }
    const args = qemuArgs(config, dir, options.shares, disk, seed);
    let process: Deno.ChildProcess;
    try {
      process = new Deno.Command(config.qemuBinary, {
        args,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new DriverError(
          "unavailable",
          `the QEMU binary "${config.qemuBinary}" was not found; install QEMU (apt install qemu-system-x86, brew install qemu) or set qemu_binary=`,
        );
      }
      throw error;
    }
    const stderr = collectTail(process.stderr);
    const exited = process.status;
    progress(
      `qemu: booting (accel ${config.accel}, ${config.cpus} vCPU, ${config.memory} MB)${
        config.kernel ? ` kernel ${config.kernel}` : ""
      }`,
    );
    const kill = async () => {
      try {
        process.kill("SIGKILL");
      } catch {
        // already gone
      }
      await exited;
      await stderr.done;
    };
    try {
      await options.started(process.pid);
      const gone = exited.then(async (status) => {
        await stderr.done;
        throw new DriverError(
          "failed",
          `QEMU exited during the boot with code ${status.code}: ${
            stderr.text().trim().split("\n").slice(-3).join(" | ") ||
            await consoleTail(dir) || "no output"
          }`,
        );
      });
      const abort = new AbortController();
      const stopOn = options.signal;
      const onAbort = () => abort.abort(stopOn?.reason);
      stopOn?.addEventListener("abort", onAbort, { once: true });
      if (stopOn?.aborted) onAbort();
      const timer = setTimeout(
        () => abort.abort(new Error("boot timeout")),
        Math.max(0, deadline - Date.now()),
      );
      let phase: "agent" | "cloud-init" = "agent";
      try {
        const ready = (async () => {
          const [qmp, qga] = await Promise.allSettled([
            QmpClient.connect(`${dir}/qmp.sock`, deadline, abort.signal),
            QgaClient.connect(`${dir}/qga.sock`, { deadline, signal: abort.signal, tryMs: 250 }),
          ]);
          if (qmp.status === "fulfilled" && qga.status === "fulfilled") {
            return { qmp: qmp.value, qga: qga.value };
          }
          if (qmp.status === "fulfilled") qmp.value.close();
          if (qga.status === "fulfilled") qga.value.close();
          throw (qmp.status === "rejected" ? qmp.reason : (qga as PromiseRejectedResult).reason);
        })();
        gone.catch(() => {});
        const { qmp, qga } = await Promise.race([ready, gone]);
        progress(`qemu: guest agent ready (${seconds()})`);
        if (seed !== undefined) {
          phase = "cloud-init";
          const cloudInit = await waitForCloudInit(qga, abort.signal);
          if (cloudInit !== undefined) progress(`qemu: ${cloudInit} (${seconds()})`);
        }
        const mounted = await mountShares(qga, options.shares);
        if (!mounted.ok) {
          progress(
            `qemu: the guest could not mount the 9p shares (${mounted.message}); output arrives at exit`,
          );
        }
        return new Machine(process, exited, qmp, qga, dir, mounted.ok);
      } catch (error) {
        if (stopOn?.aborted) throw error;
        if (abort.signal.aborted) {
          const tail = await consoleTail(dir);
          throw new DriverError(
            "failed",
            `the VM's guest agent did not answer within ${
              Math.round(config.bootTimeoutMs / 1000)
            } s (boot_timeout=): ${
              phase === "cloud-init"
                ? "its agent answered but cloud-init did not finish (see /var/log/cloud-init.log in the guest)"
                : "the guest needs qemu-guest-agent on the virtio-serial port org.qemu.guest_agent.0"
            }${tail ? `; last console lines: ${tail}` : "; the serial console stayed empty"}`,
          );
        }
        throw error;
      } finally {
        clearTimeout(timer);
        stopOn?.removeEventListener("abort", onAbort);
      }
    } catch (error) {
      await kill();
      throw error;
    }
  }

  /** Resolves when the QEMU process has exited. */
  get exited(): Promise<Deno.CommandStatus> {
    return this.#exited;
  }

  /** Stops the VM: QMP `quit`, then SIGKILL if it is still there after a moment. */
  shutdown(): Promise<void> {
    this.#shutdown ??= (async () => {
      this.qga.close();
      await this.#qmp.execute("quit", undefined, 2000).catch(() => {});
      this.#qmp.close();
      const timer = setTimeout(() => {
        try {
          this.#process.kill("SIGKILL");
        } catch {
          // already gone
        }
      }, 3000);
      await this.#exited;
      clearTimeout(timer);
    })();
    return this.#shutdown;
  }
}

/** The QEMU command line for a machine. */
export function qemuArgs(
  config: QemuConfig,
  dir: string,
  shares: readonly Share[],
  disk?: string,
  seed?: string,
): string[] {
  const args = [
    "-name",
    "pocketci",
    "-nodefaults",
    "-display",
    "none",
    "-no-reboot",
    "-accel",
    config.accel,
    "-m",
    String(config.memory),
    "-smp",
    String(config.cpus),
    "-serial",
    `file:${dir}/console.log`,
    "-qmp",
    `unix:${dir}/qmp.sock,server=on,wait=off`,
    "-chardev",
    `socket,path=${dir}/qga.sock,server=on,wait=off,id=qga0`,
    "-device",
    "virtio-serial-pci",
    "-device",
    "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
  ];
  if (config.arch === "aarch64") {
    args.push("-machine", "virt", "-cpu", config.accel === "tcg" ? "max" : "host");
    const firmware = AARCH64_FIRMWARE.find((path) => exists(path));
    if (firmware !== undefined && config.kernel === undefined) args.push("-bios", firmware);
  } else {
    args.push("-machine", "pc", "-cpu", config.accel === "tcg" ? "max" : "host");
  }
  if (config.kernel !== undefined) {
    args.push("-kernel", config.kernel);
    if (config.initrd !== undefined) args.push("-initrd", config.initrd);
    args.push(
      "-append",
      config.append ?? (config.arch === "aarch64" ? "console=ttyAMA0" : "console=ttyS0"),
    );
  }
  if (disk !== undefined) args.push("-drive", `file=${disk},if=virtio,format=qcow2`);
  if (seed !== undefined) args.push("-drive", `file=${seed},if=virtio,format=raw,readonly=on`);
  // User-mode networking (outbound only: no port reaches the guest from the host).
  args.push("-nic", "user,model=virtio-net-pci");
  shares.forEach((share, index) => {
    args.push(
      "-virtfs",
      `local,path=${share.hostPath},mount_tag=${share.tag},security_model=none,id=fs${index}`,
    );
  });
  return args;
}

const AARCH64_FIRMWARE = [
  "/opt/homebrew/share/qemu/edk2-aarch64-code.fd",
  "/usr/local/share/qemu/edk2-aarch64-code.fd",
  "/usr/share/AAVMF/AAVMF_CODE.fd",
  "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
];

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** `qemu-img create -f qcow2 -b BASE -F qcow2 OVERLAY`: the base is never written. */
export async function createOverlay(base: string, overlay: string): Promise<void> {
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command("qemu-img", {
      args: ["create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay],
      stdout: "null",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new DriverError(
        "unavailable",
        "qemu-img was not found; install it (apt install qemu-utils, brew install qemu)",
      );
    }
    throw error;
  }
  if (result.code !== 0) {
    const message = new TextDecoder().decode(result.stderr).trim().split("\n").at(-1);
    throw new DriverError("failed", `qemu-img could not create the overlay on ${base}: ${message}`);
  }
}

/** What a boot-time shell script printed and how it ended. */
interface ScriptResult {
  readonly exitcode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a shell script through the agent and polls (with backoff up to `maxWaitMs`) for its end. */
async function runScript(
  qga: QgaClient,
  script: string,
  maxWaitMs: number,
  signal?: AbortSignal,
): Promise<ScriptResult> {
  const pid = await qga.exec({ path: "/bin/sh", args: ["-c", script], capture: true }, 10_000);
  const text = (bytes: Uint8Array | undefined) =>
    new TextDecoder().decode(bytes ?? new Uint8Array()).trim();
  for (let wait = 5;; wait = Math.min(wait * 2, maxWaitMs)) {
    const status = await qga.execStatus(pid, 10_000);
    if (status.exited) {
      return {
        exitcode: status.exitcode,
        stdout: text(status.stdout),
        stderr: text(status.stderr),
      };
    }
    if (signal?.aborted) throw signal.reason;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/** Mounts every share in the guest through the agent (idempotent). */
async function mountShares(
  qga: QgaClient,
  shares: readonly Share[],
): Promise<{ ok: boolean; message: string }> {
  if (shares.length === 0) return { ok: true, message: "" };
  const script = shares.map((share) =>
    `mkdir -p '${share.mountPoint}' && { grep -qs ' ${share.mountPoint} ' /proc/mounts || mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 '${share.tag}' '${share.mountPoint}'; } || exit 1`
  ).join("\n");
  const result = await runScript(qga, script, 100);
  return { ok: result.exitcode === 0, message: result.stderr || `exit ${result.exitcode}` };
}

/**
 * The guest-side wait for cloud-init: a shell loop (no Python process polling under emulation)
 * until cloud-init wrote its final result, which it prints; `absent` or `disabled` when there
 * is nothing to wait for.
 */
export const CLOUD_INIT_WAIT = [
  "command -v cloud-init >/dev/null 2>&1 || { echo absent; exit 0; }",
  "while [ ! -e /run/cloud-init/result.json ]; do",
  "  if [ -e /etc/cloud/cloud-init.disabled ] || [ -e /run/cloud-init/disabled ]; then echo disabled; exit 0; fi",
  "  sleep 0.5",
  "done",
  "cat /run/cloud-init/result.json",
].join("\n");

/** Waits until cloud-init is done; returns its progress line (undefined: no cloud-init). */
async function waitForCloudInit(qga: QgaClient, signal: AbortSignal): Promise<string | undefined> {
  const result = await runScript(qga, CLOUD_INIT_WAIT, 500, signal);
  return cloudInitSummary(result.stdout);
}

/** The progress line for what the cloud-init wait printed (`result.json`, or absent/disabled). */
export function cloudInitSummary(printed: string): string | undefined {
  if (printed === "absent" || printed === "disabled") return undefined;
  try {
    const result = JSON.parse(printed) as { v1?: { datasource?: unknown; errors?: unknown } };
    const errors = Array.isArray(result.v1?.errors) ? result.v1.errors.map(String) : [];
    const source = typeof result.v1?.datasource === "string" ? ` (${result.v1.datasource})` : "";
    return errors.length === 0
      ? `cloud-init done${source}`
      : `cloud-init done with ${errors.length} error(s)${source}: ${
        errors.join("; ").replace(/\s+/g, " ").slice(0, 300)
      }`;
  } catch {
    return "cloud-init done (its result.json did not parse)";
  }
}

/** The last lines of the serial console, joined with " | " (empty when there is none). */
export async function consoleTail(dir: string): Promise<string> {
  const text = await Deno.readTextFile(`${dir}/console.log`).catch(() => "");
  return text
    // deno-lint-ignore no-control-regex
    .replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, "")
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "")
    .slice(-CONSOLE_LINES)
    .join(" | ");
}

function collectTail(stream: ReadableStream<Uint8Array>): { text(): string; done: Promise<void> } {
  let kept = "";
  const decoder = new TextDecoder();
  const done = (async () => {
    try {
      for await (const chunk of stream) {
        kept = (kept + decoder.decode(chunk, { stream: true })).slice(-4000);
      }
    } catch {
      // the process ended
    }
  })();
  return { text: () => kept, done };
}
