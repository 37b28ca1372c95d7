/**
 * One EXEC channel in the agent: starts the process as the leader of its own process group,
 * sends its stdout and stderr as they come (within the host's window), feeds it stdin as
 * the host sends it (granting credit once each chunk was written to the pipe), signals
 * the group on KILL, and once the leader exits kills what is left of the group and sends
 * EXIT with 128+N for a signal death.
 *
 * @module
 */

import {
  encodeCredit,
  encodeData,
  encodeJson,
  type ExecRequest,
  type ExitBody,
  type Frame,
  FrameType,
  INITIAL_WINDOW,
  ProtocolError,
  Stream,
} from "./protocol.ts";
import { ReceiveWindow, SendWindow } from "./window.ts";
import { pumpWithCredits } from "./pump.ts";
import type { FrameWriter } from "./frame_writer.ts";
import { resolveUser, type UserIds } from "./user.ts";
import { lookupExecutable, signalGroup, toExitStatus } from "../drivers/native/process_group.ts";

/** How long output may still flow after the group was killed before the pipes are cut. */
const DRAIN_MS = 2000;

/** The PATH used to find argv[0] when the request's env has none. */
const FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The process groups of every exec still running, for {@link killAllGroups}. */
const liveGroups = new Set<number>();

/** SIGKILLs every exec's process group (the agent is being stopped). */
export function killAllGroups(): void {
  for (const pgid of liveGroups) signalGroup(pgid, "SIGKILL");
}

/** Why an exec could not start, with the protocol error code. */
export class ExecStartError extends Error {
  /** `command_not_found` or `invalid` or `failed`. */
  readonly code: "command_not_found" | "invalid" | "failed";
  /** Creates the error. */
  constructor(code: ExecStartError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

/** A running exec. */
export class ExecChannel {
  readonly #channel: number;
  readonly #writer: FrameWriter;
  readonly #child: Deno.ChildProcess;
  readonly #windows = new Map<number, SendWindow>([
    [Stream.STDOUT, new SendWindow()],
    [Stream.STDERR, new SendWindow()],
  ]);
  readonly #readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  readonly #stdinWindow = new ReceiveWindow();
  #stdinChain: Promise<void> = Promise.resolve();
  /** Resolves once EXIT was sent (or the connection was gone). */
  readonly done: Promise<void>;

  private constructor(
    channel: number,
    writer: FrameWriter,
    child: Deno.ChildProcess,
    stdin: boolean,
  ) {
    this.#channel = channel;
    this.#writer = writer;
    this.#child = child;
    this.#stdin = stdin ? child.stdin.getWriter() : undefined;
    liveGroups.add(child.pid);
    this.done = this.#run();
  }

  /** The process group (the leader's pid). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Starts the process; throws {@link ExecStartError} when it cannot. */
  static start(channel: number, request: ExecRequest, writer: FrameWriter): ExecChannel {
    const argv = request.argv;
    if (
      !Array.isArray(argv) || argv.length === 0 || typeof argv[0] !== "string" || argv[0] === ""
    ) {
      throw new ExecStartError("invalid", "the command is empty; give at least the program to run");
    }
    const env = { ...(request.env ?? {}) };
    const cwd = request.workDir ?? Deno.cwd();
    const found = lookupExecutable(argv[0], env.PATH ?? FALLBACK_PATH, cwd);
    if (found.kind === "missing") {
      throw new ExecStartError(
        "command_not_found",
        `command "${argv[0]}" not found on the guest's PATH`,
      );
    }
    if (found.kind === "not_executable") {
      throw new ExecStartError(
        "command_not_found",
        `command "${argv[0]}" cannot be executed (permission denied)`,
      );
    }
    let ids: UserIds | undefined;
    if (request.user !== undefined) {
      try {
        ids = resolveUser(request.user, readPasswd());
      } catch (error) {
        throw new ExecStartError("invalid", (error as Error).message);
      }
    }
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(found.path ?? argv[0], {
        args: argv.slice(1),
        cwd,
        env,
        clearEnv: true,
        detached: true,
        ...(ids === undefined ? {} : { uid: ids.uid, gid: ids.gid }),
        stdin: request.stdin ? "piped" : "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new ExecStartError(
          "command_not_found",
          `cannot start "${argv[0]}" in "${cwd}": ${(error as Error).message}`,
        );
      }
      throw new ExecStartError("failed", `cannot start "${argv[0]}": ${(error as Error).message}`);
    }
    return new ExecChannel(channel, writer, child, request.stdin);
  }

  /** Handles a frame the host sent on this channel. */
  onFrame(frame: Frame, stream: number, rest: Uint8Array): void {
    if (frame.type === FrameType.CREDIT) {
      this.#windows.get(stream)?.grant(new DataView(rest.buffer, rest.byteOffset).getUint32(0));
    } else if (frame.type === FrameType.DATA && stream === Stream.INPUT) {
      if (!this.#stdinWindow.receive(rest.length)) throw overrun(this.#channel);
      const bytes = rest.slice();
      this.#stdinChain = this.#stdinChain.then(async () => {
        if (this.#stdin === undefined) return;
        await this.#stdin.write(bytes).catch(() => {});
        this.#stdinWindow.granted(bytes.length);
        await this.#writer.trySend(encodeCredit(this.#channel, Stream.INPUT, bytes.length));
      });
    } else if (frame.type === FrameType.EOF && stream === Stream.INPUT) {
      this.#stdinChain = this.#stdinChain.then(() => this.#stdin?.close().catch(() => {}));
    }
  }

  /** Signals the whole process group. */
  kill(signal: Deno.Signal): void {
    signalGroup(this.#child.pid, signal);
  }

  /** Kills the group and stops sending (the connection is gone). */
  abandon(error: Error): void {
    this.kill("SIGKILL");
    for (const window of this.#windows.values()) window.close(error);
    for (const reader of this.#readers) reader.cancel().catch(() => {});
  }

  async #run(): Promise<void> {
    const pumps = [
      this.#pump(Stream.STDOUT, this.#child.stdout),
      this.#pump(Stream.STDERR, this.#child.stderr),
    ];
    const status = await this.#child.status;
    // The leader is gone: so is the rest of its group, as when a container's main process exits.
    signalGroup(this.#child.pid, "SIGKILL");
    liveGroups.delete(this.#child.pid);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<false>((resolve) =>
      timer = setTimeout(() => resolve(false), DRAIN_MS)
    );
    const drained = await Promise.race([Promise.all(pumps).then(() => true), expired]);
    clearTimeout(timer);
    if (!drained) {
      // A process that left the group (setsid) still holds the pipes.
      for (const reader of this.#readers) await reader.cancel().catch(() => {});
      await Promise.all(pumps);
    }
    await this.#stdin?.abort().catch(() => {});
    const exit: ExitBody = toExitStatus(status);
    await this.#writer.trySend(encodeJson(FrameType.EXIT, this.#channel, exit));
  }

  async #pump(stream: 1 | 2, source: ReadableStream<Uint8Array>): Promise<void> {
    const reader = source.getReader();
    this.#readers.push(reader);
    try {
      await pumpWithCredits(
        reader,
        this.#windows.get(stream)!,
        (bytes) => this.#writer.send(encodeData(this.#channel, stream, bytes)),
      );
    } catch {
      // Cancelled after the drain deadline, or the connection went away.
      await reader.cancel().catch(() => {});
    }
  }
}

/** The error for a peer that sent more than its window: it would make the agent buffer it all. */
export function overrun(channel: number): ProtocolError {
  return new ProtocolError(
    "framing",
    `the host sent more input on channel ${channel} than its window allows (${INITIAL_WINDOW} bytes until credited)`,
  );
}

function readPasswd(): string {
  try {
    return Deno.readTextFileSync("/etc/passwd");
  } catch {
    return "";
  }
}
