/**
 * The driver's own empty image, imported from a tar built in memory. Volume helper containers are
 * created from it and never started: the archive API works on them, so moving files in and out of
 * volumes needs no runnable image and no registry.
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import type Docker from "dockerode";
import { Readable } from "node:stream";
import { directoriesTar } from "./tar.ts";

/** The helper image's reference. */
export const HELPER_IMAGE = "pocketci/volume-helper:1";

const imports = new WeakMap<Docker, Promise<void>>();

async function importHelper(docker: Docker): Promise<void> {
  try {
    await docker.getImage(HELPER_IMAGE).inspect();
    return;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 404) throw error;
  }
  const [repo, tag] = HELPER_IMAGE.split(":");
  const stream = await docker.importImage(Readable.from([directoriesTar(["v"])]) as never, {
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
