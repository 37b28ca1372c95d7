/**
 * The qemu driver's settings, read from a resolved DSN configuration (see `dsn/schemas.ts`).
 *
 * @module
 */

import { parseDuration } from "../../dsn/duration.ts";

/** Typed settings of one qemu driver. */
export interface QemuConfig {
  /** VM memory in MB. */
  readonly memory: number;
  /** vCPUs. */
  readonly cpus: number;
  /** `-accel` value. */
  readonly accel: "hvf" | "kvm" | "tcg";
  /** The QEMU system emulator (path or name on PATH). */
  readonly qemuBinary: string;
  /** Where downloaded images are cached. */
  readonly cacheDir: string;
  /** A qcow2 base image; absent: the Ubuntu cloud image (or no disk with `kernel`). */
  readonly image?: string;
  /** A kernel booted directly. */
  readonly kernel?: string;
  /** Its initramfs. */
  readonly initrd?: string;
  /** Its command line. */
  readonly append?: string;
  /** A public key file the cloud-init seed authorizes for SSH. */
  readonly sshKey?: string;
  /** How long the boot may take until the agent answers and cloud-init is done, in ms. */
  readonly bootTimeoutMs: number;
  /** The host architecture (decides machine type and firmware). */
  readonly arch: "x86_64" | "aarch64";
}

function text(config: Readonly<Record<string, unknown>>, name: string): string | undefined {
  const value = config[name];
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** Reads a resolved configuration; absent values take the DSN defaults. */
export function qemuConfig(config: Readonly<Record<string, unknown>>): QemuConfig {
  const arch = Deno.build.arch === "aarch64" ? "aarch64" : "x86_64";
  const accel = text(config, "accel");
  return {
    memory: typeof config.memory === "number" ? config.memory : 2048,
    cpus: typeof config.cpus === "number" ? config.cpus : 2,
    accel: accel === "hvf" || accel === "kvm" || accel === "tcg" ? accel : "tcg",
    qemuBinary: text(config, "qemu_binary") ??
      (arch === "aarch64" ? "qemu-system-aarch64" : "qemu-system-x86_64"),
    cacheDir: text(config, "cache_dir") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache/ci/qemu`,
    ...(text(config, "image") ? { image: text(config, "image") } : {}),
    ...(text(config, "kernel") ? { kernel: text(config, "kernel") } : {}),
    ...(text(config, "initrd") ? { initrd: text(config, "initrd") } : {}),
    ...(text(config, "append") ? { append: text(config, "append") } : {}),
    ...(text(config, "ssh_key") ? { sshKey: text(config, "ssh_key") } : {}),
    bootTimeoutMs: parseDuration(text(config, "boot_timeout") ?? "5m"),
    arch,
  };
}
