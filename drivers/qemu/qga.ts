/**
 * A QEMU guest agent (QGA) client over the Unix socket of the VM's virtio-serial port.
 *
 * The protocol is line-delimited JSON with no request ids, so replies are matched to requests
 * by order. Getting that right:
 * - Handshake: a 0xFF byte (which makes the agent drop any half-read request) then
 *   `guest-sync-delimited` with a fresh random id, repeated with a new id while nothing
 *   answers; replies to earlier tries and the agent's complaints about the 0xFF are drained
 *   until the reply carrying the last id arrives, then `guest-sync` with another fresh id
 *   confirms the channel is aligned.
 * - A request is written once. When its reply does not come in time the call fails with
 *   {@link QgaTimeoutError} but its slot stays in the queue, so the late reply is dropped
 *   instead of being taken for the next request's. It is never sent again: a `guest-exec`
 *   that timed out may have started its process.
 * - One request is in flight at a time: the agent drops requests that arrive while it is
 *   busy (four concurrent `guest-exec`s lost two), so callers queue.
 *
 * @module
 */

import { connectUnix, LineChannel } from "./line_channel.ts";

/** The agent answered with an error object. */
export class QgaError extends Error {
  /** The agent's error class, such as `GenericError`. */
  readonly errorClass: string;
  /** Creates an error from the agent's `{class, desc}`. */
  constructor(command: string, errorClass: string, desc: string) {
    super(`guest agent: ${command}: ${desc}`);
    this.name = "QgaError";
    this.errorClass = errorClass;
  }
}

/** No reply within the time allowed; the request was not (and will not be) sent again. */
export class QgaTimeoutError extends Error {
  /** Creates the error naming the command. */
  constructor(command: string, ms: number) {
    super(`guest agent: no reply to ${command} within ${ms} ms`);
    this.name = "QgaTimeoutError";
  }
}

/** The connection to the agent ended. */
export class QgaClosedError extends Error {
  /** Creates the error. */
  constructor(reason = "the connection to the guest agent closed") {
    super(reason);
    this.name = "QgaClosedError";
  }
}

interface Pending {
  readonly command: string;
  readonly message: unknown;
  /** Written to the agent (a request that timed out before its turn never is). */
  sent: boolean;
  resolve(value: unknown): void;
  reject(error: Error): void;
  /** The caller gave up; the reply is dropped when it comes. */
  abandoned: boolean;
}

/** Options for {@link QgaClient.connect}. */
export interface QgaConnectOptions {
  /** Give up (connection and handshake) at this time (ms since the epoch). */
  readonly deadline: number;
  /** Aborts the wait. */
  readonly signal?: AbortSignal;
  /** How long one handshake try waits for an answer before a new id is sent. */
  readonly tryMs?: number;
}

/** What {@link QgaClient.exec} starts a process with. */
export interface GuestExecRequest {
  /** The program (an absolute path; the agent does not search the guest's PATH reliably). */
  readonly path: string;
  /** Its arguments (without argv[0]). */
  readonly args: readonly string[];
  /** The complete environment (`K=V`); absent: the agent's own. */
  readonly env?: readonly string[];
  /** Bytes for standard input (closed after them); absent: /dev/null. */
  readonly input?: Uint8Array;
  /** Whether the agent captures stdout and stderr (returned at exit, capped by the agent). */
  readonly capture: boolean;
}

/** `guest-exec-status` of a process. */
export interface GuestExecStatus {
  /** Whether it ended. */
  readonly exited: boolean;
  /** Its exit code, when it exited normally. */
  readonly exitcode?: number;
  /** The signal that killed it. */
  readonly signal?: number;
  /** Captured stdout, decoded. */
  readonly stdout?: Uint8Array;
  /** Captured stderr, decoded. */
  readonly stderr?: Uint8Array;
  /** The agent dropped stdout beyond its limit. */
  readonly stdoutTruncated?: boolean;
  /** The agent dropped stderr beyond its limit. */
  readonly stderrTruncated?: boolean;
}

/** A connected, synchronised guest agent channel. */
export class QgaClient {
  readonly #channel: LineChannel;
  readonly #queue: Pending[] = [];
  #closedError: Error | undefined;
  #handshake: ((text: string, delimited: boolean) => void) | undefined;

  private constructor(conn: Deno.Conn) {
    this.#channel = new LineChannel(
      conn,
      (line) => this.#receive(line.text, line.delimited),
      (error) => this.#fail(new QgaClosedError(error ? error.message : undefined)),
    );
  }

  /** Connects to the agent socket at `path` and performs the handshake. */
  static async connect(path: string, options: QgaConnectOptions): Promise<QgaClient> {
    const conn = await connectUnix(path, options.deadline, options.signal);
    const client = new QgaClient(conn);
    try {
      await client.#sync(options);
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  /** Whether the connection ended. */
  get closed(): boolean {
    return this.#closedError !== undefined;
  }

  /** Sends `command` once and resolves with its `return` value. */
  call<T>(
    command: string,
    args: Record<string, unknown> | undefined,
    timeoutMs: number,
  ): Promise<T> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = {
        command,
        message: args === undefined ? { execute: command } : { execute: command, arguments: args },
        sent: false,
        abandoned: false,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        pending.abandoned = true;
        reject(new QgaTimeoutError(command, timeoutMs));
        this.#pump();
      }, timeoutMs);
      this.#queue.push(pending);
      this.#pump();
    });
  }

  /**
   * Sends the request at the head of the queue once the one before it was answered: the
   * agent loses requests that arrive while it is still busy with earlier ones (measured with
   * four concurrent `guest-exec`s), so exactly one is in flight at a time. A request that timed
   * out before its turn is dropped unsent.
   */
  #pump(): void {
    while (this.#queue.length > 0 && !this.#queue[0].sent && this.#queue[0].abandoned) {
      this.#queue.shift();
    }
    const head = this.#queue[0];
    if (head === undefined || head.sent || this.#closedError) return;
    head.sent = true;
    this.#channel.writeJson(head.message).catch((error: Error) => {
      this.#fail(
        new QgaClosedError(`guest agent: could not send ${head.command}: ${error.message}`),
      );
    });
  }

  /** Starts a process in the guest; resolves with its guest PID. */
  async exec(request: GuestExecRequest, timeoutMs: number): Promise<number> {
    const args: Record<string, unknown> = {
      path: request.path,
      arg: [...request.args],
      "capture-output": request.capture,
    };
    if (request.env !== undefined) args.env = [...request.env];
    if (request.input !== undefined && request.input.length > 0) {
      args["input-data"] = encodeBase64(request.input);
    }
    const reply = await this.call<{ pid: number }>("guest-exec", args, timeoutMs);
    return reply.pid;
  }

  /** One `guest-exec-status` query. */
  async execStatus(pid: number, timeoutMs: number): Promise<GuestExecStatus> {
    const reply = await this.call<Record<string, unknown>>("guest-exec-status", { pid }, timeoutMs);
    return {
      exited: reply.exited === true,
      ...(typeof reply.exitcode === "number" ? { exitcode: reply.exitcode } : {}),
      ...(typeof reply.signal === "number" ? { signal: reply.signal } : {}),
      ...(typeof reply["out-data"] === "string" ? { stdout: decodeBase64(reply["out-data"]) } : {}),
      ...(typeof reply["err-data"] === "string" ? { stderr: decodeBase64(reply["err-data"]) } : {}),
      ...(reply["out-truncated"] === true ? { stdoutTruncated: true } : {}),
      ...(reply["err-truncated"] === true ? { stderrTruncated: true } : {}),
    };
  }

  /** Closes the connection; pending calls fail with {@link QgaClosedError}. */
  close(): void {
    this.#fail(new QgaClosedError());
    this.#channel.close();
  }

  async #sync(options: QgaConnectOptions): Promise<void> {
    const tryMs = options.tryMs ?? 500;
    const began = Date.now();
    let lastId = 0;
    let answered: (() => void) | undefined;
    let heard = false;
    this.#handshake = (text, _delimited) => {
      heard = true;
      const reply = parse(text);
      if (reply !== undefined && reply.return === lastId) answered?.();
    };
    try {
      while (true) {
        options.signal?.throwIfAborted();
        if (this.#closedError) throw this.#closedError;
        if (Date.now() >= options.deadline) {
          throw new QgaTimeoutError("guest-sync-delimited", Date.now() - began);
        }
        lastId = freshId();
        const synced = new Promise<void>((resolve) => answered = resolve);
        await this.#channel.writeBytes(new Uint8Array([0xff]));
        await this.#channel.writeJson({
          execute: "guest-sync-delimited",
          arguments: { id: lastId },
        });
        // While stale replies keep arriving the agent is alive and working through the
        // queue: wait for ours instead of piling up new tries.
        let done = false;
        synced.then(() => done = true);
        do {
          heard = false;
          const wait = delay(tryMs);
          await Promise.race([synced, wait.promise]);
          wait.cancel();
        } while (!done && heard && Date.now() < options.deadline);
        if (done) break;
      }
      // Confirms the alignment with a plain guest-sync (no 0xFF, no delimiter).
      this.#handshake = undefined;
      const confirm = freshId();
      const value = await this.call<number>(
        "guest-sync",
        { id: confirm },
        Math.max(1000, tryMs * 4),
      );
      if (value !== confirm) {
        throw new Error(`guest agent: guest-sync returned ${value}, not ${confirm}`);
      }
    } finally {
      this.#handshake = undefined;
    }
  }

  #receive(text: string, delimited: boolean): void {
    if (this.#handshake !== undefined) {
      this.#handshake(text, delimited);
      return;
    }
    if (this.#queue[0]?.sent !== true) return; // unsolicited (a late error about a 0xFF)
    const pending = this.#queue.shift()!;
    this.#pump();
    if (pending.abandoned) return;
    const reply = parse(text);
    if (reply === undefined) {
      pending.reject(
        new Error(`guest agent: unreadable reply to ${pending.command}: ${text.slice(0, 200)}`),
      );
    } else if (reply.error !== undefined) {
      const error = reply.error as { class?: string; desc?: string };
      pending.reject(new QgaError(pending.command, error.class ?? "Error", error.desc ?? text));
    } else {
      pending.resolve(reply.return);
    }
  }

  #fail(error: Error): void {
    this.#closedError ??= error;
    for (const pending of this.#queue.splice(0)) {
      if (!pending.abandoned) pending.reject(this.#closedError);
    }
  }
}

function parse(text: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null
      ? value as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

function freshId(): number {
  return 1 + Math.floor(Math.random() * 0x7ffffffe);
}

function delay(ms: number): { promise: Promise<void>; cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
  return { promise, cancel: () => clearTimeout(timer) };
}

/** Base64 of `bytes` (the agent's encoding of input and captured output). */
export function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** The bytes of a base64 string. */
export function decodeBase64(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
