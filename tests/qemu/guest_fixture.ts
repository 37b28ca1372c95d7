/**
 * Shared set-up for the qemu tests: the minimal test guest built by `.ci/setup_qemu.sh` (a
 * Debian kernel booted directly with an initramfs holding busybox and qemu-guest-agent) and
 * QEMU itself must be there. In CI (CI=true) a missing guest or QEMU is a failure, never a skip.
 * The guest boots with `accel=tcg`: KVM hangs Linux guests on this project's CI machines.
 *
 * @module
 */

/** Where `.ci/setup_qemu.sh` leaves the current test guest. */
export const GUEST_DIR: string = Deno.env.get("POCKETCI_QEMU_GUEST") ??
  "/var/cache/pocketci-test/qemu/current";

/** The kernel to boot: the uncompressed one (about 3 s faster under TCG) when it was unpacked. */
export const GUEST_KERNEL: string = (() => {
  try {
    Deno.statSync(`${GUEST_DIR}/vmlinux`);
    return `${GUEST_DIR}/vmlinux`;
  } catch {
    return `${GUEST_DIR}/vmlinuz`;
  }
})();

/** The DSN configuration that boots the test guest (as the DSN resolver would produce it). */
export function guestConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    memory: 512,
    cpus: 1,
    accel: "tcg",
    qemu_binary: "qemu-system-x86_64",
    image: `${GUEST_DIR}/base.qcow2`,
    kernel: GUEST_KERNEL,
    initrd: `${GUEST_DIR}/initrd.img`,
    append: "console=ttyS0 panic=-1 quiet",
    boot_timeout: "90s",
    ...extra,
  };
}

/** Why the qemu tests cannot run, or `undefined` when they can. */
export async function guestProblem(): Promise<string | undefined> {
  for (const file of ["vmlinuz", "initrd.img", "base.qcow2"]) {
    if (!(await Deno.stat(`${GUEST_DIR}/${file}`).then(() => true, () => false))) {
      return `the qemu test guest is missing (${GUEST_DIR}/${file}); run .ci/setup_qemu.sh as root`;
    }
  }
  for (const tool of ["qemu-system-x86_64", "qemu-img"]) {
    const out = await new Deno.Command(tool, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output().catch(() => undefined);
    if (!out?.success) return `${tool} is not installed; run .ci/setup_qemu.sh as root`;
  }
  return undefined;
}

const problem = await guestProblem();

/** `true` when the qemu tests must be ignored: only outside CI and only when something is missing. */
export const ignoreQemu: boolean = problem !== undefined && Deno.env.get("CI") !== "true";

/** Throws the reason the qemu tests cannot run (the first test, so CI fails with it). */
export function assertGuest(): void {
  if (problem) throw new Error(problem);
}

/** The driver string (colon form) that boots the test guest, for pipeline-level tests. */
export function guestDsn(extra: Record<string, unknown> = {}): string {
  const { qemu_binary: _binary, ...config } = guestConfig(extra);
  return "qemu:" + Object.entries(config).map(([key, value]) => `${key}=${value}`).join(",");
}
