/**
 * Where a VM's private files live: one of a fixed set of slot directories under
 * `<TMPDIR>/pocketci-qemu-<uid>` (mode 0700). The set is fixed because `pocketci run` grants
 * the runner network access to Unix sockets by exact path only (`--allow-net=unix:PATH`), and
 * the grant is computed before the run starts; short paths also keep the sockets under the
 * 108-byte limit of Unix socket addresses. A slot is taken by creating its directory; one whose
 * owner (PID and start time in `owner`) is gone is taken over.
 *
 * @module
 */

import { DriverError } from "../contract.ts";
import { processStartTime } from "../native/proc_stat.ts";
import { MARKER_FILE } from "./layout.ts";

/** How many VMs of one user can run at the same time. */
export const VM_SLOTS = 8;

/** The directory holding the slots, for a temporary directory and user ID. */
export function slotRoot(tmp: string, uid: number | null): string {
  return `${tmp.replace(/\/+$/, "") || "/tmp"}/pocketci-qemu-${uid ?? "user"}`;
}

/** The QMP and guest agent socket paths of every slot (for the permission grant). */
export function slotSockets(root: string): string[] {
  return Array.from(
    { length: VM_SLOTS },
    (_, i) => [`${root}/${i}/qmp.sock`, `${root}/${i}/qga.sock`],
  )
    .flat();
}

/** The temporary directory of this process. */
export function tempDir(): string {
  try {
    return Deno.env.get("TMPDIR") || "/tmp";
  } catch {
    return "/tmp";
  }
}

/** Takes a free slot, returning its directory (empty, mode 0700, owned by this process). */
export async function acquireSlot(root: string, runId: string): Promise<string> {
  await Deno.mkdir(root, { recursive: true, mode: 0o700 });
  const info = await Deno.stat(root);
  const uid = Deno.uid();
  if (uid !== null && info.uid !== uid) {
    throw new DriverError(
      "failed",
      `${root} belongs to another user; remove it or set TMPDIR to a directory of your own`,
    );
  }
  await Deno.chmod(root, 0o700);
  const startTime = (await processStartTime(Deno.pid)) ?? "";
  for (let attempt = 0; attempt < 2; attempt++) {
    for (let i = 0; i < VM_SLOTS; i++) {
      const dir = `${root}/${i}`;
      try {
        await Deno.mkdir(dir, { mode: 0o700 });
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
        if (attempt === 0 || !(await abandoned(dir))) continue;
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        try {
          await Deno.mkdir(dir, { mode: 0o700 });
        } catch {
          continue;
        }
      }
      await Deno.writeTextFile(`${dir}/owner`, `${Deno.pid} ${startTime}\n`);
      await Deno.writeTextFile(`${dir}/${MARKER_FILE}`, runId);
      return dir;
    }
  }
  throw new DriverError(
    "unavailable",
    `all ${VM_SLOTS} VM slots in ${root} are in use by running pocketci runs; wait for one to end (or run pocketci gc)`,
  );
}

/** Whether the process that took slot `dir` is gone (its PID is dead or reused). */
async function abandoned(dir: string): Promise<boolean> {
  const owner = await Deno.readTextFile(`${dir}/owner`).catch(() => undefined);
  if (owner === undefined) {
    // Taken a moment ago and not yet labelled, or left half-made: judge by age.
    const info = await Deno.stat(dir).catch(() => undefined);
    return info?.mtime !== null && info?.mtime !== undefined &&
      Date.now() - info.mtime.getTime() > 60_000;
  }
  const [pid, startTime] = owner.trim().split(" ");
  const current = await processStartTime(Number(pid));
  return current === undefined || (startTime !== "" && current !== startTime);
}
