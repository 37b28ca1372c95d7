/**
 * The cloud-init seed of a vz guest (NoCloud, volume label `cidata`): `meta-data` with the
 * instance ID and `user-data` from `guest_boot.ts`, written with the ISO tool the qemu driver
 * finds (genisoimage, mkisofs or xorriso).
 *
 * @module
 */

import { DriverError } from "../contract.ts";
import { findIsoTool } from "../qemu/seed_iso.ts";

/** The `meta-data` file. */
export function metaData(instanceId: string): string {
  return `instance-id: ${instanceId}\nlocal-hostname: pocketci\n`;
}

/** Writes the seed ISO at `iso` (its files in a scratch directory beside it, removed after). */
export async function writeSeedIso(
  iso: string,
  instanceId: string,
  userData: string,
): Promise<void> {
  const tool = await findIsoTool();
  if (tool === undefined) {
    throw new DriverError(
      "unavailable",
      "vz needs genisoimage, mkisofs or xorriso to make the cloud-init seed; install one (brew install cdrtools or xorriso)",
    );
  }
  const files = `${iso}.d`;
  await Deno.mkdir(files, { recursive: true });
  try {
    await Deno.writeTextFile(`${files}/meta-data`, metaData(instanceId));
    await Deno.writeTextFile(`${files}/user-data`, userData);
    const result = await new Deno.Command(tool.path, {
      args: [...tool.args, iso, `${files}/meta-data`, `${files}/user-data`],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (result.code !== 0) {
      const line = new TextDecoder().decode(result.stderr).trim().split("\n").at(-1);
      throw new DriverError("failed", `${tool.path} could not write the seed ISO: ${line}`);
    }
  } finally {
    await Deno.remove(files, { recursive: true }).catch(() => {});
  }
}
