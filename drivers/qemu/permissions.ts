/**
 * The Deno permissions the qemu driver needs: running the QEMU binary, qemu-img and the ISO
 * tool only; reading and writing the image cache, the state directory and the temporary
 * directory holding each VM's sockets; reading the base image and a direct-boot kernel.
 *
 * @module
 */

import type { PermissionNeed } from "../contract.ts";
import { defaultStateDir } from "../../runner/state.ts";
import type { QemuConfig } from "./config.ts";
import { ISO_TOOLS } from "./seed_iso.ts";
import { slotRoot, slotSockets } from "./vm_slots.ts";

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** The permissions for a configuration (`raw.stateDir` names a non-default state directory). */
export function qemuPermissions(
  config: QemuConfig,
  raw: Readonly<Record<string, unknown>>,
): PermissionNeed[] {
  const stateDir = typeof raw.stateDir === "string" ? raw.stateDir : defaultStateDir({
    POCKETCI_STATE_DIR: env("POCKETCI_STATE_DIR"),
    XDG_STATE_HOME: env("XDG_STATE_HOME"),
    HOME: env("HOME"),
  });
  const slots = slotRoot(env("TMPDIR") ?? "/tmp", Deno.uid());
  const inputs = [config.image, config.kernel, config.initrd, config.sshKey].filter((
    p,
  ): p is string => p !== undefined);
  // Only the ISO tools installed: Deno reports names it cannot resolve on PATH.
  const dirs = (env("PATH") ?? "/usr/bin:/bin").split(":").filter((dir) => dir.startsWith("/"));
  const isoTools = ISO_TOOLS.map((tool) => tool.name).filter((name) =>
    dirs.some((dir) => isFile(`${dir}/${name}`))
  );
  const run = [
    config.qemuBinary,
    "qemu-img",
    ...(isoTools.length ? isoTools : ["genisoimage"]),
    "/bin/sh",
  ];
  const needs: PermissionNeed[] = [
    {
      permission: "run",
      values: run,
      reason:
        "starts the VM, creates its copy-on-write overlay and makes the cloud-init seed ISO; /bin/sh reads the VM process's start time from /proc for gc (Deno opens /proc files only with --allow-all)",
    },
    {
      permission: "read",
      values: [
        config.cacheDir,
        stateDir,
        slots,
        ...inputs,
        ...dirs,
      ],
      reason:
        "the cached image, the run's shared volumes and the namespace's caches (state directory), the VM's sockets in a private temporary directory, the base image, kernel and SSH public key given, and PATH to find the ISO tool",
    },
    {
      permission: "write",
      values: [config.cacheDir, stateDir, slots],
      reason:
        "downloads the image into the cache, writes volumes, caches and task output files, and creates the VM's sockets, overlay and seed",
    },
    {
      permission: "net",
      values: slotSockets(slots).map((path) => `unix:${path}`),
      reason:
        "talks to QEMU's monitor (QMP) and the guest agent over Unix sockets in the VM's private directory (one of a fixed set, as the grant names exact paths)",
    },
    {
      permission: "sys",
      values: ["uid"],
      reason: "names the VM directory after the user and checks it belongs to them",
    },
    {
      permission: "env",
      values: ["PATH", "HOME", "TMPDIR"],
      reason:
        "finds the ISO tool on PATH, expands ~ in cache_dir and places the VM's private directory in TMPDIR",
    },
  ];
  if (config.image === undefined && config.kernel === undefined) {
    needs.push({
      permission: "net",
      values: ["cloud-images.ubuntu.com:443"],
      reason: "downloads the default Ubuntu cloud image and its SHA256SUMS (no image= given)",
    });
  }
  return needs;
}
