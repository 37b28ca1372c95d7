/**
 * Runs the `pocketci` CLI as a subprocess, the way a user does.
 *
 * @module
 */

/** The result of a CLI run. */
export interface CliResult {
  /** Exit code (128+N when killed by signal N). */
  readonly code: number;
  /** Standard output. */
  readonly stdout: string;
  /** Standard error. */
  readonly stderr: string;
}

/** Options for {@link runCli}. */
export interface CliOptions {
  /** Working directory. */
  readonly cwd?: string;
  /** Extra environment. */
  readonly env?: Record<string, string>;
  /** Start from an empty environment (plus `env`) instead of inheriting this process's. */
  readonly clearEnv?: boolean;
  /** Sends this signal after the given delay, or when stdout/stderr first contains `when`. */
  readonly signal?: {
    readonly name: Deno.Signal;
    readonly when: string;
    readonly repeatAfterMs?: number;
  };
}

const ENTRY = new URL("../../pocketci.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** Runs `pocketci ARGS...`. */
export async function runCli(
  args: readonly string[],
  options: CliOptions = {},
): Promise<CliResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-worker-options", `--config=${CONFIG}`, ENTRY, ...args],
    cwd: options.cwd,
    clearEnv: options.clearEnv,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let stdout = "";
  let stderr = "";
  let signalled = false;
  const watch = () => {
    const signal = options.signal;
    if (signal === undefined || signalled) return;
    if ((stdout + stderr).includes(signal.when)) {
      signalled = true;
      child.kill(signal.name);
      if (signal.repeatAfterMs !== undefined) {
        setTimeout(() => {
          try {
            child.kill(signal.name);
          } catch {
            // already exited
          }
        }, signal.repeatAfterMs);
      }
    }
  };
  const pump = async (stream: ReadableStream<Uint8Array>, into: (text: string) => void) => {
    for await (const chunk of stream) {
      into(decoder.decode(chunk, { stream: true }));
      watch();
    }
  };
  await Promise.all([
    pump(child.stdout, (text) => stdout += text),
    pump(child.stderr, (text) => stderr += text),
  ]);
  const status = await child.status;
  const signalNumbers: Record<string, number> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  const code = status.signal ? 128 + (signalNumbers[status.signal] ?? 0) : status.code;
  return { code, stdout, stderr };
}

/** Every regular file below `dir` (recursively), as paths. */
export async function filesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) found.push(...await filesUnder(path));
    else if (entry.isFile) found.push(path);
  }
  return found;
}

/** A temp directory with `files` written into it. */
export async function tempProject(files: Readonly<Record<string, string>>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-cli-" });
  for (const [path, content] of Object.entries(files)) {
    const full = `${dir}/${path}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, content);
  }
  return dir;
}

/**
 * Reads a child's output until `marker` appears (a run reaching a known point before the test
 * kills it); throws with what was read when the output ends first. Returns the reader, which the
 * caller cancels once done with the child.
 */
export async function readUntil(
  stream: ReadableStream<Uint8Array>,
  marker: string,
): Promise<ReadableStreamDefaultReader<Uint8Array>> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let seen = "";
  while (!seen.includes(marker)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the run ended before "${marker}": ${seen}`);
    seen += decoder.decode(value, { stream: true });
  }
  return reader;
}
