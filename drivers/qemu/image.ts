/**
 * The default base image: the Ubuntu cloud image for the host architecture, downloaded once
 * into `cache_dir`, checked against the published SHA256SUMS and reused by later runs. A
 * download is written to `<file>.part` and renamed into place only once its checksum matched;
 * an interrupted one is resumed with an HTTP range request (or restarted when the server
 * ignores ranges).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { DriverError } from "../contract.ts";

/** Where the image and its checksums come from. */
export interface ImageSource {
  /** The image's URL. */
  readonly url: string;
  /** The SHA256SUMS URL listing it. */
  readonly sumsUrl: string;
  /** The file name in the cache and in SHA256SUMS. */
  readonly fileName: string;
}

/** The Ubuntu 24.04 (noble) cloud image for `arch`. */
export function ubuntuImage(arch: "x86_64" | "aarch64"): ImageSource {
  const base = "https://cloud-images.ubuntu.com/noble/current";
  const fileName = `noble-server-cloudimg-${arch === "aarch64" ? "arm64" : "amd64"}.img`;
  return { url: `${base}/${fileName}`, sumsUrl: `${base}/SHA256SUMS`, fileName };
}

/** Options for {@link ensureImage}. */
export interface EnsureImageOptions {
  /** Prints progress lines. */
  readonly progress: (line: string) => void;
  /** Aborts the download. */
  readonly signal?: AbortSignal;
  /** Bytes between progress lines (default: every 10 %, at most every 2 s). */
  readonly fetch?: typeof fetch;
}

/** The cached image's path, downloading and verifying it first when it is not cached. */
export async function ensureImage(
  cacheDir: string,
  source: ImageSource,
  options: EnsureImageOptions,
): Promise<string> {
  const target = `${cacheDir}/${source.fileName}`;
  if (await Deno.stat(target).then((info) => info.isFile, () => false)) return target;
  const get = options.fetch ?? fetch;
  await Deno.mkdir(cacheDir, { recursive: true });
  const offline = (error: unknown) =>
    new DriverError(
      "unavailable",
      `could not download the default VM image ${source.url} (${
        (error as Error).message
      }); on an offline machine set image= to a local qcow2 image`,
    );
  let expected: string;
  try {
    const response = await get(source.sumsUrl, { signal: options.signal });
    if (!response.ok) throw new Error(`HTTP ${response.status} for ${source.sumsUrl}`);
    expected = checksumFor(await response.text(), source.fileName);
  } catch (error) {
    if (error instanceof DriverError) throw error;
    options.signal?.throwIfAborted();
    throw offline(error);
  }
  const part = `${target}.part`;
  try {
    await download(get, source, part, options);
  } catch (error) {
    options.signal?.throwIfAborted();
    if (error instanceof DriverError) throw error;
    throw offline(error);
  }
  const actual = await sha256File(part);
  if (actual !== expected) {
    await Deno.remove(part).catch(() => {});
    throw new DriverError(
      "failed",
      `the downloaded ${source.fileName} does not match SHA256SUMS (expected ${expected}, got ${actual}); it was deleted, run again to download it anew`,
    );
  }
  await Deno.rename(part, target);
  options.progress(`qemu: ${source.fileName} verified and cached in ${cacheDir}`);
  return target;
}

/** The SHA-256 listed for `fileName` in a SHA256SUMS text. */
export function checksumFor(sums: string, fileName: string): string {
  for (const line of sums.split("\n")) {
    const match = /^([0-9a-f]{64})\s+\*?(.+)$/i.exec(line.trim());
    if (match && match[2] === fileName) return match[1].toLowerCase();
  }
  throw new DriverError("failed", `SHA256SUMS does not list ${fileName}`);
}

async function download(
  get: typeof fetch,
  source: ImageSource,
  part: string,
  options: EnsureImageOptions,
): Promise<void> {
  const have = await Deno.stat(part).then((info) => info.size, () => 0);
  const headers: Record<string, string> = have > 0 ? { Range: `bytes=${have}-` } : {};
  const response = await get(source.url, { headers, signal: options.signal });
  if (response.status === 416 && have > 0) {
    // Already complete: the checksum decides.
    await response.body?.cancel();
    return;
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    throw new Error(`HTTP ${response.status} for ${source.url}`);
  }
  const resumed = response.status === 206 && have > 0;
  const length = Number(response.headers.get("content-length") ?? "0");
  const total = resumed ? have + length : length;
  let received = resumed ? have : 0;
  options.progress(
    `qemu: downloading ${source.url}${resumed ? ` (resuming at ${megabytes(have)})` : ""}`,
  );
  const file = await Deno.open(part, {
    write: true,
    create: true,
    append: resumed,
    truncate: !resumed,
  });
  let lastShown = Date.now();
  let lastPercent = total > 0 ? Math.floor((received / total) * 10) : 0;
  try {
    for await (const chunk of response.body) {
      let offset = 0;
      while (offset < chunk.length) offset += await file.write(chunk.subarray(offset));
      received += chunk.length;
      const tenth = total > 0 ? Math.floor((received / total) * 10) : 0;
      if (tenth !== lastPercent || Date.now() - lastShown > 2000) {
        lastPercent = tenth;
        lastShown = Date.now();
        options.progress(
          `qemu: ${source.fileName} ${
            total > 0 ? `${Math.floor((received / total) * 100)}% ` : ""
          }(${megabytes(received)}${total > 0 ? ` of ${megabytes(total)}` : ""})`,
        );
      }
    }
  } finally {
    file.close();
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

/** The hex SHA-256 of a file, read in chunks. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}
