/**
 * The host side of the PocketCI guest agent protocol (`agent/README.md`), shared by every
 * driver that runs commands through the agent: one connection carries many execs, file
 * transfers and pings at once; output reaches the sink as the agent sends it and is
 * credited back once delivered, stdin and uploads are sent within the agent's window.
 *
 * @module
 */

import {
  decodeCredit,
  decodeJson,
  decodeStreamPayload,
  encodeCredit,
  encodeData,
  encodeEof,
  encodeFrame,
  encodeJson,
  type ErrorBody,
  type ExecRequest,
  type ExitBody,
  type Frame,
  FrameReader,
  FrameType,
  type FsRequest,
  type Hello,
  MAGIC,
  parseHello,
  PROTOCOL_VERSIONS,
  ProtocolError,
  type StartedBody,
  Stream,
} from "../../agent/protocol.ts";
import { FrameWriter } from "../../agent/frame_writer.ts";
import { SendWindow } from "../../agent/window.ts";
import { pumpWithCredits } from "../../agent/pump.ts";
import {
  DriverError,
  type DriverErrorCode,
  type ExitStatus,
  type OutputSink,
} from "../contract.ts";

/** A byte stream pair to the agent (a socket, a character device's host end). */
export interface AgentStream {
  /** Bytes from the agent. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the agent. */
  readonly writable: WritableStream<Uint8Array>;
  /** Closes the underlying resource (optional; closing the streams may suffice). */
  close?(): void;
}

/** Options for {@link AgentClient.connect}. */
export interface ConnectOptions {
  /** Versions offered in the hello (tests offer others). */
  readonly versions?: readonly number[];
  /** How long to wait for the agent's hello (default 10 s). */
  readonly helloTimeoutMs?: number;
}

/** One command to run through the agent. */
export interface AgentExecSpec {
  /** argv; index 0 is the program. */
  readonly argv: readonly string[];
  /** The complete environment. */
  readonly env: Readonly<Record<string, string>>;
  /** Working directory (must exist in the guest). */
  readonly workDir?: string;
  /** A user name, `uid` or `uid:gid`. */
  readonly user?: string;
  /** Bytes (or a stream of them) for standard input, which is then closed. */
  readonly stdin?: Uint8Array | ReadableStream<Uint8Array>;
}

/** A started exec. */
export interface AgentExec {
  /** The process's pid in the guest. */
  readonly pid: number;
  /** Resolves with the exit status after all output was delivered. */
  wait(): Promise<ExitStatus>;
  /** Signals the process group (a finished exec ignores it). */
  kill(signal: Deno.Signal): Promise<void>;
}

interface Pending {
  onFrame(frame: Frame): void;
  fail(error: Error): void;
}

/** A connection to one agent. */
export class AgentClient {
  readonly #stream: AgentStream;
  readonly #reader: FrameReader;
  readonly #writer: FrameWriter;
  readonly #channels = new Map<number, Pending>();
  #next = 1;
  #failure: DriverError | undefined;
  /** The protocol version agreed on. */
  readonly version: number;
  /** What the agent said it is. */
  readonly software: string;
  /** Resolves once the connection ended, with the reason. */
  readonly closed: Promise<DriverError>;
  #resolveClosed: (error: DriverError) => void = () => {};

  private constructor(stream: AgentStream, reader: FrameReader, writer: FrameWriter, hello: Hello) {
    this.#stream = stream;
    this.#reader = reader;
    this.#writer = writer;
    this.version = hello.version!;
    this.software = hello.software ?? "";
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    void this.#readLoop();
  }

  /**
   * Says hello over `stream` and waits for the agent's. Rejects with a one-line
   * {@link DriverError} when the peer is not an agent or speaks no common version.
   */
  static async connect(stream: AgentStream, options: ConnectOptions = {}): Promise<AgentClient> {
    const reader = new FrameReader(stream.readable);
    const writer = new FrameWriter(stream.writable);
    const versions = options.versions ?? PROTOCOL_VERSIONS;
    const fail = async (message: string, cause?: unknown): Promise<never> => {
      await reader.cancel();
      await writer.close();
      try {
        stream.close?.();
      } catch {
        // Already closed.
      }
      throw new DriverError("unavailable", message, { cause });
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await writer.send(encodeJson(FrameType.HELLO, 0, { magic: MAGIC, versions } satisfies Hello));
      const timeout = options.helloTimeoutMs ?? 10_000;
      const frame = await Promise.race([
        reader.next(),
        new Promise<never>((_, reject) =>
          timer = setTimeout(
            () => reject(new Error(`no hello from the guest agent within ${timeout} ms`)),
            timeout,
          )
        ),
      ]);
      if (frame === undefined) {
        return await fail("the guest agent closed the connection before its hello");
      }
      if (frame.type === FrameType.ERROR) {
        const body = decodeJson<ErrorBody>(frame);
        return await fail(`the guest agent refused the connection: ${body.message}`);
      }
      const hello = parseHello(frame);
      if (hello.version === undefined || !versions.includes(hello.version)) {
        return await fail(
          `protocol version mismatch: the guest agent chose ${hello.version} (it speaks ${
            hello.versions.join(", ")
          }), this host speaks ${versions.join(", ")}; use an agent from the same PocketCI version`,
        );
      }
      return new AgentClient(stream, reader, writer, hello);
    } catch (error) {
      if (error instanceof DriverError) throw error;
      return await fail(`cannot talk to the guest agent: ${(error as Error).message}`, error);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a ping and resolves with the round trip in milliseconds. */
  async ping(): Promise<number> {
    const started = performance.now();
    const channel = this.#open();
    const done = new Promise<void>((resolve, reject) => {
      this.#channels.set(channel, {
        onFrame: (frame) => {
          this.#channels.delete(channel);
          if (frame.type === FrameType.PONG) resolve();
          else reject(this.#frameError(frame));
        },
        fail: reject,
      });
    });
    await this.#send(encodeFrame(FrameType.PING, channel, new Uint8Array(8)));
    await done;
    return performance.now() - started;
  }

  /**
   * Starts a command. Resolves once it runs; rejects with a {@link DriverError}
   * (`command_not_found`, `invalid`, `unavailable`) when it could not start.
   */
  async exec(spec: AgentExecSpec, output: OutputSink): Promise<AgentExec> {
    const channel = this.#open();
    const window = new SendWindow();
    let resolveStarted: (pid: number) => void = () => {};
    let rejectStarted: (error: Error) => void = () => {};
    const started = new Promise<number>((resolve, reject) => {
      resolveStarted = resolve;
      rejectStarted = reject;
    });
    let resolveExit: (status: ExitStatus) => void = () => {};
    let rejectExit: (error: Error) => void = () => {};
    const exited = new Promise<ExitStatus>((resolve, reject) => {
      resolveExit = resolve;
      rejectExit = reject;
    });
    exited.catch(() => {});
    let running = false;
    this.#channels.set(channel, {
      onFrame: (frame) => {
        switch (frame.type) {
          case FrameType.STARTED:
            running = true;
            resolveStarted(decodeJson<StartedBody>(frame).pid);
            return;
          case FrameType.DATA: {
            const { stream, rest } = decodeStreamPayload(frame);
            if (stream !== Stream.STDOUT && stream !== Stream.STDERR) {
              throw new ProtocolError("framing", `exec output on stream ${stream}`);
            }
            try {
              output(stream === Stream.STDOUT ? "stdout" : "stderr", rest);
            } catch {
              // A failing sink loses its chunk, not the connection.
            }
            void this.#writer.trySend(encodeCredit(channel, stream, rest.length));
            return;
          }
          case FrameType.CREDIT: {
            const { stream, bytes } = decodeCredit(frame);
            if (stream === Stream.INPUT) window.grant(bytes);
            return;
          }
          case FrameType.EXIT: {
            this.#channels.delete(channel);
            window.close(new Error("the command exited"));
            const body = decodeJson<ExitBody>(frame);
            resolveExit(
              body.signal === undefined
                ? { code: body.code }
                : { code: body.code, signal: body.signal },
            );
            return;
          }
          case FrameType.ERROR:
            this.#channels.delete(channel);
            window.close(new Error("the command failed"));
            if (running) rejectExit(this.#frameError(frame));
            else rejectStarted(this.#frameError(frame));
            return;
        }
      },
      fail: (error) => {
        window.close(error);
        rejectStarted(error);
        rejectExit(error);
      },
    });
    const request: ExecRequest = {
      argv: spec.argv,
      env: spec.env,
      ...(spec.workDir === undefined ? {} : { workDir: spec.workDir }),
      ...(spec.user === undefined ? {} : { user: spec.user }),
      stdin: spec.stdin !== undefined,
    };
    await this.#send(encodeJson(FrameType.EXEC, channel, request));
    const pid = await started;
    if (spec.stdin !== undefined) void this.#upload(channel, spec.stdin, window);
    return {
      pid,
      wait: () => exited,
      kill: async (signal) => {
        if (!this.#channels.has(channel)) return;
        await this.#writer.trySend(encodeJson(FrameType.KILL, channel, { signal }));
      },
    };
  }

  /** Extracts a tar stream into the guest directory `path` (created when missing). */
  async put(path: string, tar: ReadableStream<Uint8Array>): Promise<void> {
    const channel = this.#open();
    const window = new SendWindow();
    const done = new Promise<void>((resolve, reject) => {
      this.#channels.set(channel, {
        onFrame: (frame) => {
          if (frame.type === FrameType.CREDIT) {
            window.grant(decodeCredit(frame).bytes);
            return;
          }
          this.#channels.delete(channel);
          window.close(new Error("the upload ended"));
          if (frame.type === FrameType.DONE) resolve();
          else reject(this.#frameError(frame));
        },
        fail: (error) => {
          window.close(error);
          reject(error);
        },
      });
    });
    await this.#send(encodeJson(FrameType.PUT, channel, { path }));
    const upload = this.#upload(channel, tar, window);
    await done;
    await upload;
  }

  /**
   * A tar of the guest directory `path` (or of `paths` inside it). Rejects with a
   * `not_found` {@link DriverError} for a missing path. The agent sends only as fast as the
   * stream is read.
   */
  async get(path: string, paths?: readonly string[]): Promise<ReadableStream<Uint8Array>> {
    const channel = this.#open();
    const queue: Uint8Array[] = [];
    let ended = false;
    let failure: Error | undefined;
    let wake: () => void = () => {};
    let firstFrame: () => void = () => {};
    const first = new Promise<void>((resolve) => firstFrame = resolve);
    const changed = () => {
      firstFrame();
      const w = wake;
      wake = () => {};
      w();
    };
    this.#channels.set(channel, {
      onFrame: (frame) => {
        if (frame.type === FrameType.DATA) {
          queue.push(decodeStreamPayload(frame).rest.slice());
        } else if (frame.type === FrameType.EOF) {
          this.#channels.delete(channel);
          ended = true;
        } else {
          this.#channels.delete(channel);
          failure = this.#frameError(frame);
        }
        changed();
      },
      fail: (error) => {
        failure = error;
        changed();
      },
    });
    await this.#send(encodeJson(FrameType.GET, channel, { path, ...(paths ? { paths } : {}) }));
    await first;
    if (failure !== undefined && queue.length === 0) throw failure;
    const writer = this.#writer;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        while (queue.length === 0 && !ended && failure === undefined) {
          await new Promise<void>((resolve) => wake = resolve);
        }
        const chunk = queue.shift();
        if (chunk !== undefined) {
          controller.enqueue(chunk);
          await writer.trySend(encodeCredit(channel, Stream.STDOUT, chunk.length));
          return;
        }
        if (failure !== undefined) controller.error(failure);
        else controller.close();
      },
      cancel: () => {
        this.#channels.delete(channel);
      },
    });
  }

  /** Runs one filesystem operation in the guest. */
  async fs(request: FsRequest): Promise<void> {
    const channel = this.#open();
    const done = new Promise<void>((resolve, reject) => {
      this.#channels.set(channel, {
        onFrame: (frame) => {
          this.#channels.delete(channel);
          if (frame.type === FrameType.DONE) resolve();
          else reject(this.#frameError(frame));
        },
        fail: reject,
      });
    });
    await this.#send(encodeJson(FrameType.FS, channel, request));
    await done;
  }

  /** Closes the connection; the agent kills what this connection started. */
  async close(): Promise<void> {
    this.#shutdown(new DriverError("unavailable", "the guest agent connection was closed"));
    await this.#writer.close();
    await this.#reader.cancel();
    try {
      this.#stream.close?.();
    } catch {
      // Already closed.
    }
  }

  #open(): number {
    if (this.#failure !== undefined) throw this.#failure;
    const channel = this.#next;
    this.#next = this.#next >= 0xfffffffe ? 1 : this.#next + 1;
    return channel;
  }

  async #send(frame: Uint8Array): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    try {
      await this.#writer.send(frame);
    } catch (error) {
      const failure = this.#failure ??
        new DriverError(
          "unavailable",
          `the guest agent connection broke: ${(error as Error).message}`,
        );
      this.#shutdown(failure);
      throw failure;
    }
  }

  async #upload(
    channel: number,
    source: Uint8Array | ReadableStream<Uint8Array>,
    window: SendWindow,
  ): Promise<void> {
    const stream = source instanceof Uint8Array
      ? new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(source);
          controller.close();
        },
      })
      : source;
    const reader = stream.getReader();
    try {
      await pumpWithCredits(
        reader,
        window,
        (bytes) => this.#writer.send(encodeData(channel, Stream.INPUT, bytes)),
      );
      await this.#writer.trySend(encodeEof(channel, Stream.INPUT));
    } catch {
      // The command exited before reading everything, or the connection is gone.
      await reader.cancel().catch(() => {});
    }
  }

  async #readLoop(): Promise<void> {
    let reason: DriverError;
    try {
      while (true) {
        const frame = await this.#reader.next();
        if (frame === undefined) {
          reason = new DriverError(
            "unavailable",
            "the guest agent closed the connection (the guest stopped or the agent exited)",
          );
          break;
        }
        if (frame.channel === 0) {
          if (frame.type === FrameType.ERROR) {
            reason = new DriverError(
              "unavailable",
              `the guest agent closed the connection: ${decodeJson<ErrorBody>(frame).message}`,
            );
            break;
          }
          throw new ProtocolError(
            "framing",
            `unexpected frame type 0x${frame.type.toString(16)} on channel 0`,
          );
        }
        this.#channels.get(frame.channel)?.onFrame(frame);
      }
    } catch (error) {
      reason = this.#failure ?? new DriverError(
        "unavailable",
        `the guest agent connection failed: ${(error as Error).message}`,
        { cause: error },
      );
    }
    this.#shutdown(reason);
    await this.#writer.close();
  }

  #shutdown(reason: DriverError): void {
    if (this.#failure === undefined) {
      this.#failure = reason;
      this.#resolveClosed(reason);
    }
    const channels = [...this.#channels.values()];
    this.#channels.clear();
    for (const channel of channels) channel.fail(this.#failure);
  }

  #frameError(frame: Frame): DriverError {
    if (frame.type !== FrameType.ERROR) {
      return new DriverError(
        "failed",
        `unexpected frame type 0x${frame.type.toString(16)} from the guest agent`,
      );
    }
    const body = decodeJson<ErrorBody>(frame);
    return new DriverError(ERROR_CODES[body.code] ?? "failed", body.message);
  }
}

const ERROR_CODES: Partial<Record<ErrorBody["code"], DriverErrorCode>> = {
  command_not_found: "command_not_found",
  not_found: "not_found",
  invalid: "invalid",
  failed: "failed",
};
