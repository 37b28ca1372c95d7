/**
 * The cloud-init NoCloud seed: `meta-data` and `user-data` on an ISO 9660 image labelled
 * `cidata`, made with whichever of genisoimage, mkisofs or xorriso is installed. The
 * user-data turns password logins off, authorizes the `ssh_key=` public keys, installs (when
 * missing) and starts qemu-guest-agent and mounts the driver's 9p shares; the
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

/**
 * The shell line that installs the guest agent only when the image lacks it (apt or dnf), so
 * an image that has it boots without network access.
 */
const INSTALL_AGENT =
  "command -v qemu-ga >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-guest-agent; } || { command -v dnf >/dev/null 2>&1 && dnf install -y qemu-guest-agent; }";

/**
 * The user-data: password logins off, the given SSH public keys authorized for the image's
 * default user, the guest agent installed (when missing) and started, the 9p shares mounted.
 * Values are written as JSON strings, which YAML reads as they are.
 */
export function userData(
  shares: readonly { tag: string; mountPoint: string }[],
  sshKeys: readonly string[] = [],
): string {
  const mounts = shares.map((share) =>
    `  - [sh, -c, ${
      JSON.stringify(
        `mkdir -p ${share.mountPoint} && (mountpoint -q ${share.mountPoint} || mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 ${share.tag} ${share.mountPoint})`,
      )
    }]`
  );
  return [
    "#cloud-config",
    "ssh_pwauth: false",
    ...(sshKeys.length > 0
      ? ["ssh_authorized_keys:", ...sshKeys.map((key) => `  - ${JSON.stringify(key)}`)]
      : []),
    "runcmd:",
    `  - [sh, -c, ${JSON.stringify(INSTALL_AGENT)}]`,
    "  - [systemctl, enable, --now, qemu-guest-agent]",
    ...mounts,
    "",
  ].join("\n");
}

const KEY_LINE =
  /^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+=*( [^\r\n]*)?$/;

/**
 * The public keys of an OpenSSH public key file (`ssh_key=`): one per non-empty line that is
 * not a comment. Anything else (a private key, a stray file) is a one-line error.
 */
export async function readSshKeys(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new DriverError(
      "failed",
      `cannot read the SSH public key ssh_key=${path}: ${(error as Error).message}`,
    );
  }
  const keys = text.split(/\r?\n/).map((line) => line.trim()).filter((line) =>
    line !== "" && !line.startsWith("#")
  );
  const bad = keys.findIndex((key) => !KEY_LINE.test(key));
  if (keys.length === 0 || bad !== -1) {
    throw new DriverError(
      "failed",
      `ssh_key=${path} is not an OpenSSH public key file (${
        keys.length === 0 ? "no key in it" : `line ${bad + 1} is not "TYPE BASE64 [COMMENT]"`
      }); give the .pub file, e.g. ssh_key=~/.ssh/id_ed25519.pub`,
    );
  }
  return keys;
}

/**
 * Writes `seed.iso` in `dir` (its files in a scratch subdirectory, removed afterwards), with
 * the first ISO tool found in `searchPath` (default: PATH).
 */
export async function makeSeedIso(
  dir: string,
  instanceId: string,
  shares: readonly { tag: string; mountPoint: string }[],
  sshKeys: readonly string[] = [],
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
  await Deno.writeTextFile(`${files}/user-data`, userData(shares, sshKeys));
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
