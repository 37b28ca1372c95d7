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
  const tmp = env("TMPDIR") ?? "/tmp";
  const inputs = [config.image, config.kernel, config.initrd].filter((p): p is string =>
    p !== undefined
  );
  const run = [config.qemuBinary, "qemu-img", ...ISO_TOOLS.map((tool) => tool.name)];
  return [
    {
      permission: "run",
      values: run,
      reason: "starts the VM, creates its copy-on-write overlay and makes the cloud-init seed ISO",
    },
    {
      permission: "read",
      values: [
        config.cacheDir,
        stateDir,
        tmp,
        ...inputs,
        ...(env("PATH") ?? "/usr/bin:/bin").split(":").filter((d) => d.startsWith("/")),
      ],
      reason:
        "the cached image, the run's shared volumes and the namespace's caches (state directory), the VM's sockets in a private temporary directory, the base image and kernel given, and PATH to find the ISO tool",
    },
    {
      permission: "write",
      values: [config.cacheDir, stateDir, tmp],
      reason:
        "downloads the image into the cache, writes volumes, caches and task output files, and creates the VM's sockets, overlay and seed",
    },
    {
      permission: "env",
      values: ["PATH", "HOME", "TMPDIR"],
      reason:
        "finds the ISO tool on PATH, expands ~ in cache_dir and places the VM's private directory in TMPDIR",
    },
    {
      permission: "net",
      values: ["cloud-images.ubuntu.com:443"],
      reason: "downloads the default Ubuntu cloud image and its SHA256SUMS when no image= is given",
    },
  ];
}
