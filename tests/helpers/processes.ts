/**
 * Watching processes from tests: a `pocketci run` launcher's runner child, and polling with a
 * bound until something is gone (no fixed sleeps).
 *
 * @module
 */

import { statFields } from "../../drivers/native/proc_stat.ts";

const ENTRY = new URL("../../pocketci.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** Starts `pocketci ARGS...` with piped output, as {@link runCli} does, and returns the process. */
export function spawnCli(
  args: readonly string[],
  env: Record<string, string> = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-worker-options", `--config=${CONFIG}`, ENTRY, ...args],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Whether `pid` is a live process (a zombie waiting to be reaped is not). */
export async function processAlive(pid: number): Promise<boolean> {
  const fields = await statFields(pid);
  return fields !== undefined && fields[0] !== "Z";
}

/** The live children of `parent` whose command line contains `text`. */
export async function childProcesses(parent: number, text: string): Promise<number[]> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    const fields = await statFields(pid);
    if (fields === undefined || fields[0] === "Z" || fields[1] !== String(parent)) continue;
    const command = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
    if (command.includes(text)) found.push(pid);
  }
  return found;
}

/** Live processes whose command line contains `text` (a run's temp directory, say). */
export async function processesMentioning(text: string): Promise<number[]> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    const pid = Number(entry.name);
    const command = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
    if (command.includes(text) && await processAlive(pid)) found.push(pid);
  }
  return found;
}

/** Polls `check` every 100 ms until it returns true; throws naming `what` after `limitMs`. */
export async function eventually(
  what: string,
  check: () => Promise<boolean>,
  limitMs = 30_000,
): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`still waiting after ${limitMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Reads `stream` until `marker` appears and returns what was read with the reader (which the
 * caller cancels once done with the process); throws with the text when the stream ends first.
 */
export async function readText(
  stream: ReadableStream<Uint8Array>,
  marker: string,
): Promise<{ text: string; reader: ReadableStreamDefaultReader<Uint8Array> }> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes(marker)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the output ended before "${marker}": ${text}`);
    text += decoder.decode(value, { stream: true });
  }
  return { text, reader };
}

/** Resolves with `promise`'s value, or with `fallback` after `ms` (the timer is cleared). */
export async function within<T, F>(ms: number, promise: Promise<T>, fallback: F): Promise<T | F> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<F>((resolve) => timer = setTimeout(() => resolve(fallback), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
