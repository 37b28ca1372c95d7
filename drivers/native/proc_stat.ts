/**
 * Reads process start times (`/proc/PID/stat` field 22) where Deno itself may not:
 * Deno opens /proc files only with --allow-all, which the narrowed runner child does
 * not hold. One long-lived `/bin/sh` answers one line per PID with shell builtins
 * only (no fork per question); it exits when its standard input closes, which
 * happens at the latest when this process ends, however it ends.
 *
 * @module
 */

import { SHELL } from "./shell.ts";

const IS_LINUX = Deno.build.os === "linux";

/** Answers `PID START` or `PID -` for each PID read from standard input. */
const READER_SCRIPT = `while read -r pid; do
  if read -r stat < "/proc/$pid/stat" 2>/dev/null; then
    rest=\${stat##*") "}
    set -- $rest
    shift 19
    echo "$1"
  else
    echo -
  fi
done`;

/** Fields of /proc/PID/stat after the command name, read by Deno, or undefined. */
export async function statFields(pid: number): Promise<string[] | undefined> {
  try {
    const text = await Deno.readTextFile(`/proc/${pid}/stat`);
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

let denoReadsProc: boolean = IS_LINUX;

/**
 * The start time of `pid` read synchronously by Deno (a few microseconds), or
 * undefined when the process is gone or Deno may not read /proc.
 */
export function startTimeSync(pid: number): string | undefined {
  if (!denoReadsProc) return undefined;
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return text.slice(text.lastIndexOf(")") + 2).split(" ")[19];
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) denoReadsProc = false;
    return undefined;
  }
}

/**
 * The start time of `pid` (Linux), read by Deno when it may, else through the shared
 * reader shell; undefined when the process does not exist or nothing can tell.
 */
export async function processStartTime(pid: number): Promise<string | undefined> {
  if (!IS_LINUX) return undefined;
  if (denoReadsProc) {
    try {
      const text = await Deno.readTextFile(`/proc/${pid}/stat`);
      return text.slice(text.lastIndexOf(")") + 2).split(" ")[19];
    } catch (error) {
      if (!(error instanceof Deno.errors.NotCapable)) return undefined;
      denoReadsProc = false;
    }
  }
  return await reader().ask(pid);
}

class StatReader {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  // Read only while a question is pending: a read left waiting would keep this
  // process alive after everything else finished.
  readonly #stdout: ReadableStreamDefaultReader<Uint8Array>;
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder();
  #buffered = "";
  /** Questions are answered in order, one line each; this chains them. */
  #last: Promise<unknown> = Promise.resolve();
  #broken = false;

  constructor() {
    this.#child = new Deno.Command(SHELL, {
      args: ["-c", READER_SCRIPT],
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin", LC_ALL: "C" },
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#child.unref();
    this.#writer = this.#child.stdin.getWriter();
    this.#stdout = this.#child.stdout.getReader();
  }

  async #line(): Promise<string> {
    while (!this.#buffered.includes("\n")) {
      const { value, done } = await this.#stdout.read();
      if (done) throw new Error("the stat reader ended");
      this.#buffered += this.#decoder.decode(value, { stream: true });
    }
    const end = this.#buffered.indexOf("\n");
    const line = this.#buffered.slice(0, end);
    this.#buffered = this.#buffered.slice(end + 1);
    return line;
  }

  ask(pid: number): Promise<string | undefined> {
    const answer = this.#last.then(async () => {
      if (this.#broken) return undefined;
      try {
        await this.#writer.write(this.#encoder.encode(`${pid}\n`));
        const line = await this.#line();
        return /^\d+$/.test(line) ? line : undefined;
      } catch {
        this.#broken = true;
        return undefined;
      }
    });
    this.#last = answer;
    return answer;
  }
}

let shared: StatReader | undefined;

function reader(): StatReader {
  shared ??= new StatReader();
  return shared;
}
