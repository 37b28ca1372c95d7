/**
 * The cloud-init NoCloud seed: `meta-data` and `user-data` on an ISO 9660 image labelled
 * `cidata`, made with whichever of genisoimage, mkisofs or xorriso is installed. The
 * user-data installs and starts qemu-guest-agent and mounts the driver's 9p shares; the
 * driver mounts them again through the agent, so a guest without cloud-init works too.
 *
 * @module
 */

import { DriverError } from "../contract.ts";

/** The ISO tools tried, in order, with the arguments that make a Joliet + Rock Ridge image. */
export const ISO_TOOLS: readonly { readonly name: string; readonly args: readonly string[] }[] = [
  { name: "genisoimage", args: ["-quiet", "-joliet", "-rock", "-volid", "cidata", "-output"] },
  { name: "mkisofs", args: ["-quiet", "-joliet", "-rock", "-volid", "cidata", "-output"] },
  {
    name: "xorriso",
    args: ["-as", "mkisofs", "-quiet", "-joliet", "-rock", "-volid", "cidata", "-output"],
  },
];

/** The first ISO tool found in `PATH` (as an absolute path), or undefined. */
export async function findIsoTool(
  path = Deno.env.get("PATH") ?? "/usr/bin:/bin",
): Promise<{ readonly path: string; readonly args: readonly string[] } | undefined> {
  for (const tool of ISO_TOOLS) {
    for (const dir of path.split(":").filter((d) => d.startsWith("/"))) {
      const candidate = `${dir}/${tool.name}`;
      const info = await Deno.stat(candidate).catch(() => undefined);
      if (info?.isFile) return { path: candidate, args: tool.args };
    }
  }
  return undefined;
}

/** The error when no ISO tool is installed. */
export function noIsoToolError(): DriverError {
  return new DriverError(
    "unavailable",
    "the qemu driver needs genisoimage, mkisofs or xorriso to make the cloud-init seed; install one (apt install genisoimage, brew install cdrtools or xorriso)",
  );
}

/** The user-data: the guest agent installed and started, the 9p shares mounted. */
export function userData(shares: readonly { tag: string; mountPoint: string }[]): string {
  const mounts = shares.map((share) =>
    `  - [sh, -c, "mkdir -p ${share.mountPoint} && (mountpoint -q ${share.mountPoint} || mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 ${share.tag} ${share.mountPoint})"]`
  );
  return [
    "#cloud-config",
    "packages: [qemu-guest-agent]",
    "runcmd:",
    "  - [systemctl, enable, --now, qemu-guest-agent]",
    ...mounts,
    "",
  ].join("\n");
}

/**
 * Writes `seed.iso` in `dir` (its files in a scratch subdirectory, removed afterwards), with
 * the first ISO tool found in `searchPath` (default: PATH).
 */
export async function makeSeedIso(
  dir: string,
  instanceId: string,
  shares: readonly { tag: string; mountPoint: string }[],
  searchPath?: string,
): Promise<string> {
  const tool = await findIsoTool(searchPath);
  if (tool === undefined) throw noIsoToolError();
  const files = `${dir}/seed`;
  await Deno.mkdir(files, { recursive: true });
  await Deno.writeTextFile(
    `${files}/meta-data`,
    `instance-id: ${instanceId}\nlocal-hostname: pocketci\n`,
  );
  await Deno.writeTextFile(`${files}/user-data`, userData(shares));
  const iso = `${dir}/seed.iso`;
  const result = await new Deno.Command(tool.path, {
    args: [...tool.args, iso, `${files}/meta-data`, `${files}/user-data`],
    stdout: "null",
    stderr: "piped",
  }).output();
  await Deno.remove(files, { recursive: true }).catch(() => {});
  if (result.code !== 0) {
    const message = new TextDecoder().decode(result.stderr).trim().split("\n").at(-1);
    throw new DriverError(
      "failed",
      `could not make the cloud-init seed ISO with ${tool.path}: ${message}`,
    );
  }
  return iso;
}
