/**
 * The cloud-init test guest built by `.ci/setup_qemu_cloud.sh`: a debootstrapped Debian root
 * filesystem (systemd, cloud-init, qemu-guest-agent) in a qcow2, booted directly with its own
 * kernel and initramfs. In CI (CI=true) a missing guest is a failure, never a skip.
 *
 * @module
 */

/** Where `.ci/setup_qemu_cloud.sh` leaves the current cloud-init test guest. */
export const CLOUD_GUEST_DIR: string = Deno.env.get("POCKETCI_QEMU_CLOUD_GUEST") ??
  "/var/cache/pocketci-test/qemu/cloud-current";

/** The DSN configuration that boots the cloud-init guest from its disk (rw root on /dev/vda). */
export function cloudGuestConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    memory: 1024,
    cpus: 1,
    accel: "tcg",
    qemu_binary: "qemu-system-x86_64",
    image: `${CLOUD_GUEST_DIR}/base.qcow2`,
    kernel: `${CLOUD_GUEST_DIR}/vmlinuz`,
    initrd: `${CLOUD_GUEST_DIR}/initrd.img`,
    append: "root=/dev/vda rw console=ttyS0 panic=-1",
    boot_timeout: "10m",
    ...extra,
  };
}

/** Why the cloud-init guest test cannot run, or `undefined` when it can. */
export async function cloudGuestProblem(): Promise<string | undefined> {
  for (const file of ["vmlinuz", "initrd.img", "base.qcow2"]) {
    if (!(await Deno.stat(`${CLOUD_GUEST_DIR}/${file}`).then(() => true, () => false))) {
      return `the qemu cloud-init test guest is missing (${CLOUD_GUEST_DIR}/${file}); run .ci/setup_qemu_cloud.sh as root`;
    }
  }
  return undefined;
}
