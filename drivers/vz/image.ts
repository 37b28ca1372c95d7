/**
 * The vz disk: Virtualization.framework boots raw images only, so a base image that is not
 * raw (the Ubuntu cloud image is qcow2) is converted once with `qemu-img convert` into the
 * cache (written to a temporary name, renamed when complete), and each VM gets a writable
 * copy (a clone on APFS, a sparse copy elsewhere), so the base is never modified.
 *
 * @module
 */

import { DriverError } from "../contract.ts";

/** The format `qemu-img info` reports for an image. */
export async function imageFormat(path: string): Promise<string> {
  const result = await qemuImg(["info", "--output=json", path]);
  return String(JSON.parse(result).format);
}

/** The cached raw form of `source`: `source` itself when raw, else a converted copy. */
export async function ensureRawImage(source: string, cacheDir: string): Promise<string> {
  const info = await Deno.stat(source).catch(() => undefined);
  if (!info?.isFile) {
    throw new DriverError(
      "invalid",
      `vz: image=${source} does not exist; give a raw or qcow2 disk image`,
    );
  }
  if (await imageFormat(source) === "raw") return source;
  const name = source.slice(source.lastIndexOf("/") + 1).replace(/\.(img|qcow2)$/, "");
  const stamp = `${info.size}-${info.mtime?.getTime() ?? 0}`;
  const raw = `${cacheDir}/${name}-${stamp}.raw`;
  if (await Deno.stat(raw).catch(() => undefined)) return raw;
  await Deno.mkdir(cacheDir, { recursive: true });
  const partial = `${raw}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await qemuImg(["convert", "-O", "raw", source, partial]);
    await Deno.rename(partial, raw);
  } finally {
    await Deno.remove(partial).catch(() => {});
  }
  return raw;
}

/** A writable copy of `raw` at `destination`: `cp -c` (APFS clone) on macOS, sparse elsewhere. */
export async function writableCopy(raw: string, destination: string): Promise<void> {
  const args = Deno.build.os === "darwin"
    ? ["-c", raw, destination]
    : ["--sparse=always", "--reflink=auto", raw, destination];
  const result = await new Deno.Command("cp", { args, stdout: "null", stderr: "piped" }).output();
  if (result.code !== 0) {
    // A filesystem without clones: a plain copy.
    await Deno.copyFile(raw, destination);
  }
  await Deno.chmod(destination, 0o600);
}

async function qemuImg(args: string[]): Promise<string> {
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command("qemu-img", { args, stdout: "piped", stderr: "piped" })
      .output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new DriverError(
        "unavailable",
        "vz needs qemu-img to convert the base image to raw; install it (brew install qemu)",
      );
    }
    throw error;
  }
  if (result.code !== 0) {
    const line = new TextDecoder().decode(result.stderr).trim().split("\n").at(-1);
    throw new DriverError("failed", `qemu-img ${args[0]} failed: ${line}`);
  }
  return new TextDecoder().decode(result.stdout);
}
