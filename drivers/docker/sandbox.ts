/**
 * Sandboxes: a long-lived container plus the exec API. Each exec has its own env, working
 * directory, user and stdin and reports its real exit code; an aborted exec is killed with its
 * children (found by a marker variable in their environment), SIGTERM first, SIGKILL after the
 * grace period.
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import type Docker from "dockerode";
import type { Duplex } from "node:stream";
import { posix } from "node:path";
import {
  DriverError,
  type ExecSpec,
  type ExitStatus,
  type OutputSink,
  type SandboxHandle,
} from "../contract.ts";
import { DEFAULT_WORKDIR } from "./container_spec.ts";
import { delay, exitStatus, pump } from "./task.ts";
import { firstLine } from "./volumes.ts";

/** The variable that marks an exec's processes so an abort can find them. */
export const EXEC_MARKER = "POCKETCI_EXEC_ID";

let execCounter = 0;

function killScript(marker: string, signal: "TERM" | "KILL"): string[] {
  // Every process whose environment carries the marker: the exec and everything it started.
  const script = `for p in /proc/[0-9]*; do ` +
    `if tr '\\0' '\\n' < "$p/environ" 2>/dev/null | grep -qx '${EXEC_MARKER}=${marker}'; then ` +
    `kill -${signal} "\${p#/proc/}" 2>/dev/null; fi; done; true`;
  return ["sh", "-c", script];
}

/** Handle on a started sandbox container. */
export class DockerSandbox implements SandboxHandle {
  /** The sandbox's run-scoped ID. */
  readonly id: string;
  /** The container. */
  readonly container: Docker.Container;
  readonly #workDir: string;
  readonly #onClose: () => Promise<void>;
  #closing: Promise<void> | undefined;

  /** Wraps a started container; `onClose` removes it. */
  constructor(
    id: string,
    container: Docker.Container,
    workDir: string,
    onClose: () => Promise<void>,
  ) {
    this.id = id;
    this.container = container;
    this.#workDir = workDir;
    this.#onClose = onClose;
  }

  /** Runs one command in the sandbox. */
  async exec(
    spec: ExecSpec,
    output: OutputSink,
    options: { readonly signal?: AbortSignal; readonly graceMs?: number } = {},
  ): Promise<ExitStatus> {
    if (this.#closing) throw new DriverError("invalid", `sandbox ${this.id} is closed`);
    if (spec.command.length === 0) throw new DriverError("invalid", "sandbox exec needs a command");
    options.signal?.throwIfAborted();
    const marker = `${Date.now().toString(36)}-${(execCounter++).toString(36)}`;
    const env = Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`);
    env.push(`${EXEC_MARKER}=${marker}`);
    const stdin = spec.stdin !== undefined;
    let exec: Docker.Exec;
    try {
      exec = await this.container.exec({
        Cmd: [...spec.command],
        Env: env,
        // A call's relative workDir is relative to /workspace, like a task's (not to the sandbox's).
        WorkingDir: spec.workDir === undefined
          ? this.#workDir
          : posix.resolve(DEFAULT_WORKDIR, spec.workDir),
        User: spec.user ?? "",
        AttachStdout: true,
        AttachStderr: true,
        AttachStdin: stdin,
      });
    } catch (error) {
      throw new DriverError("failed", `cannot exec in sandbox ${this.id}: ${firstLine(error)}`, {
        cause: error,
      });
    }
    // Output of a failed start (command not found) arrives on the stream; keep a little of it.
    let head = "";
    const decoder = new TextDecoder();
    const sink: OutputSink = (stream, chunk) => {
      if (head.length < 512) head += decoder.decode(chunk.subarray(0, 512));
      output(stream, chunk);
    };
    const stream = await exec.start({ hijack: stdin, stdin }) as unknown as Duplex;
    const done = pump(stream, sink);
    if (stdin) {
      stream.on("error", () => {});
      stream.write(spec.stdin);
      stream.end();
    }
    const onAbort = () =>
      void this.#kill(marker, options.graceMs ?? 10_000, done).then(async () => {
        // Without a shell in the image nothing could be killed: stop waiting for it.
        if (await delay(2000, done) === "timeout") stream.destroy();
      });
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await done;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
    const code = await this.#exitCode(exec);
    if (
      (code === 126 || code === 127) &&
      /OCI runtime exec failed|executable file not found/.test(head)
    ) {
      throw new DriverError(
        "command_not_found",
        `cannot run ${spec.command[0]} in sandbox ${this.id}: ${head.trim().split("\n")[0]}`,
      );
    }
    return exitStatus(code, false);
  }

  async #exitCode(exec: Docker.Exec): Promise<number> {
    // The stream can end a moment before the engine records the exit code.
    for (let i = 0; i < 200; i++) {
      const info = await exec.inspect();
      if (!info.Running && info.ExitCode !== null) return info.ExitCode;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new DriverError(
      "failed",
      `sandbox ${this.id}: the engine did not report the exec's exit code`,
    );
  }

  async #kill(marker: string, graceMs: number, done: Promise<void>): Promise<void> {
    await this.#runQuiet(killScript(marker, "TERM"));
    if (await delay(graceMs, done) === "timeout") await this.#runQuiet(killScript(marker, "KILL"));
  }

  async #runQuiet(command: string[]): Promise<void> {
    try {
      const exec = await this.container.exec({
        Cmd: command,
        AttachStdout: true,
        AttachStderr: true,
      });
      const stream = await exec.start({}) as unknown as Duplex;
      await pump(stream, () => {});
    } catch {
      // The sandbox is going away or has no shell; the caller's wait ends on its own.
    }
  }

  /** Removes the container. Safe to call more than once. */
  close(): Promise<void> {
    this.#closing ??= this.#onClose();
    return this.#closing;
  }
}
