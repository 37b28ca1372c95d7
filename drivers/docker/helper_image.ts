/**
 * The driver's own helper image, imported from a tar built in memory: an empty `/v` where volume
 * helper containers mount a volume (created, never started: the archive API works on them), and a
 * tiny pause program per architecture that keeps a network holder alive. No image has to be
 * pulled and no registry reached for either.
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import type Docker from "dockerode";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { PAUSE_ARCHES, pauseBinary, pausePath } from "./pause_binary.ts";
import { entriesTar } from "./tar.ts";

/**
 * The helper image's reference. The tag is a hash of what goes into the image, so an engine that
 * has an image from another version of the driver gets this one imported next to it.
 */
export const HELPER_IMAGE = `pocketci/helper:${
  createHash("sha256")
    .update(PAUSE_ARCHES.map((arch) => `${arch}:${encodeHex(pauseBinary(arch))}`).join(",") + ",v/")
    .digest("hex").slice(0, 12)
}`;

function encodeHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const imports = new WeakMap<Docker, Promise<void>>();

/** The helper image's root file system: `/v` and the pause programs. */
export function helperImageTar(): Uint8Array {
  return entriesTar([
    { name: "v" },
    ...PAUSE_ARCHES.map((arch) => ({
      name: pausePath(arch).slice(1),
      data: pauseBinary(arch),
      mode: 0o755,
    })),
  ]);
}

async function importHelper(docker: Docker): Promise<void> {
  try {
    await docker.getImage(HELPER_IMAGE).inspect();
    return;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 404) throw error;
  }
  const [repo, tag] = HELPER_IMAGE.split(":");
  const stream = await docker.importImage(Readable.from([helperImageTar()]) as never, {
    repo,
    tag,
  }) as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (error: Error | null, events: { error?: string }[]) => {
      const failed = events?.find((e) => e.error);
      if (error) reject(error);
      else if (failed) reject(new Error(failed.error));
      else resolve();
    });
  });
}

/** Imports the helper image once per engine client (a no-op when it is already there). */
export function ensureHelperImage(docker: Docker): Promise<void> {
  let pending = imports.get(docker);
  if (!pending) {
    pending = importHelper(docker);
    imports.set(docker, pending);
    pending.catch(() => imports.delete(docker));
  }
  return pending;
}
