/**
 * The PocketCI guest agent's wire protocol (`agent/README.md` specifies it byte by byte):
 * length-prefixed frames over any byte stream (vsock, a unix socket, a virtio-serial port),
 * each carrying a type, a channel and a payload. Control messages are JSON; data is raw.
 * Shared by the agent and the host-side client (`drivers/agent_client/`).
 *
 * @module
 */

/** Protocol versions this build speaks, newest last. */
export const PROTOCOL_VERSIONS: readonly number[] = [1];

/** The `magic` field of a hello: tells a PocketCI agent stream from anything else. */
export const MAGIC = "pocketci-agent";

/** Bytes of the frame header: length (4), type (1), channel (4). */
export const HEADER_BYTES = 9;

/** The largest payload a frame may carry; a longer one is a framing error. */
export const MAX_PAYLOAD = 1024 * 1024;

/** The largest DATA payload a sender produces (a frame is at most this plus its stream byte). */
export const MAX_CHUNK = 64 * 1024;

/** Bytes each data stream may have in flight before the receiver grants more (its window). */
export const INITIAL_WINDOW = 256 * 1024;

/** Frame types. */
export const FrameType = {
  /** JSON {@link Hello}; the first frame in each direction, channel 0. */
  HELLO: 0x01,
  /** JSON {@link ErrorBody}; channel 0: the connection is closing; else that channel failed. */
  ERROR: 0x02,
  /** Opaque payload, answered by PONG with the same payload. */
  PING: 0x03,
  /** The PING's payload echoed. */
  PONG: 0x04,
  /** Stream byte + bytes of a data stream of the channel. */
  DATA: 0x05,
  /** Stream byte: that data stream of the channel ended. */
  EOF: 0x06,
  /** Stream byte + uint32 BE: the receiver grants that many more bytes of the stream. */
  CREDIT: 0x07,
  /** Host to agent, JSON {@link ExecRequest}: opens an exec channel. */
  EXEC: 0x10,
  /** Agent to host, JSON {@link StartedBody}: the process runs. */
  STARTED: 0x11,
  /** Agent to host, JSON {@link ExitBody}: the process ended; the channel is closed. */
  EXIT: 0x12,
  /** Host to agent, JSON {@link KillBody}: signal the exec's process group. */
  KILL: 0x13,
  /** Host to agent, JSON {@link PutRequest}: a tar follows as stream 0, extracted at `path`. */
  PUT: 0x20,
  /** Host to agent, JSON {@link GetRequest}: the agent answers with a tar as stream 1. */
  GET: 0x21,
  /** Host to agent, JSON {@link FsRequest}: mkdir, remove or symlink. */
  FS: 0x22,
  /** Agent to host, JSON `{}`: a PUT or FS request succeeded; the channel is closed. */
  DONE: 0x23,
} as const;

/** A frame type's number. */
export type FrameTypeCode = typeof FrameType[keyof typeof FrameType];

/** Data stream numbers within a channel. */
export const Stream = {
  /** Host to agent: an exec's stdin, a PUT's tar. */
  INPUT: 0,
  /** Agent to host: an exec's stdout, a GET's tar. */
  STDOUT: 1,
  /** Agent to host: an exec's stderr. */
  STDERR: 2,
} as const;

/** A data stream number. */
export type StreamId = typeof Stream[keyof typeof Stream];

/** One decoded frame. */
export interface Frame {
  /** The frame type. */
  readonly type: number;
  /** The channel (0: the connection itself). */
  readonly channel: number;
  /** The payload (a view into the reader's buffer: valid until the next read). */
  readonly payload: Uint8Array;
}

/** The hello each side sends first. */
export interface Hello {
  /** Always {@link MAGIC}. */
  readonly magic: string;
  /** The versions the sender speaks. */
  readonly versions: readonly number[];
  /** Agent only: the version it chose (the highest both speak). */
  readonly version?: number;
  /** Free text naming the sender (`pocketci-agent 1 linux x86_64`). */
  readonly software?: string;
}

/** The body of an ERROR frame. */
export interface ErrorBody {
  /** Machine-readable reason. */
  readonly code:
    | "version"
    | "framing"
    | "invalid"
    | "command_not_found"
    | "not_found"
    | "failed";
  /** One line saying what went wrong. */
  readonly message: string;
}

/** An EXEC request. */
export interface ExecRequest {
  /** argv; index 0 is looked up on `env.PATH` (or the agent's PATH when env has none). */
  readonly argv: readonly string[];
  /** The complete environment of the process (nothing of the agent's is inherited). */
  readonly env: Readonly<Record<string, string>>;
  /** Working directory; must exist. Absent: the agent's own. */
  readonly workDir?: string;
  /** A user name, or `uid` or `uid:gid`; absent: the agent's user. */
  readonly user?: string;
  /** True when stdin data follows (stream 0, then EOF); false: stdin is /dev/null. */
  readonly stdin: boolean;
}

/** The body of STARTED. */
export interface StartedBody {
  /** The process's pid in the guest (also its process group). */
  readonly pid: number;
}

/** The body of EXIT. */
export interface ExitBody {
  /** Exit code; 128+N when killed by signal N. */
  readonly code: number;
  /** The signal number that killed the process, when one did. */
  readonly signal?: number;
}

/** The body of KILL. */
export interface KillBody {
  /** A signal name such as `SIGTERM`. */
  readonly signal: string;
}

/** The body of PUT. */
export interface PutRequest {
  /** The directory the tar is extracted into (created when missing). */
  readonly path: string;
}

/** The body of GET. */
export interface GetRequest {
  /** The directory to pack. */
  readonly path: string;
  /** Only these paths, relative to `path` (directories recursively). */
  readonly paths?: readonly string[];
}

/** The body of FS. */
export type FsRequest =
  | { readonly op: "mkdir"; readonly path: string }
  | { readonly op: "remove"; readonly path: string }
  | { readonly op: "symlink"; readonly path: string; readonly target: string };

/** A protocol violation by the peer: the connection cannot continue. */
export class ProtocolError extends Error {
  /** Machine-readable reason. */
  readonly code: ErrorBody["code"];
  /** Creates a protocol error. */
  constructor(code: ErrorBody["code"], message: string) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes one frame. */
export function encodeFrame(type: number, channel: number, payload: Uint8Array): Uint8Array {
  if (payload.length > MAX_PAYLOAD) {
    throw new ProtocolError(
      "framing",
      `frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`,
    );
  }
  const frame = new Uint8Array(HEADER_BYTES + payload.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, 5 + payload.length);
  view.setUint8(4, type);
  view.setUint32(5, channel);
  frame.set(payload, HEADER_BYTES);
  return frame;
}

/** Encodes a frame whose payload is `body` as JSON. */
export function encodeJson(type: number, channel: number, body: unknown): Uint8Array {
  return encodeFrame(type, channel, encoder.encode(JSON.stringify(body)));
}

/** Encodes a DATA frame. */
export function encodeData(channel: number, stream: StreamId, bytes: Uint8Array): Uint8Array {
  if (bytes.length + 1 > MAX_PAYLOAD) {
    throw new ProtocolError(
      "framing",
      `a DATA frame of ${bytes.length} bytes exceeds ${MAX_PAYLOAD}`,
    );
  }
  // Written in place: one copy of the bytes, not two.
  const frame = new Uint8Array(HEADER_BYTES + 1 + bytes.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, 6 + bytes.length);
  view.setUint8(4, FrameType.DATA);
  view.setUint32(5, channel);
  frame[HEADER_BYTES] = stream;
  frame.set(bytes, HEADER_BYTES + 1);
  return frame;
}

/** Encodes an EOF frame. */
export function encodeEof(channel: number, stream: StreamId): Uint8Array {
  return encodeFrame(FrameType.EOF, channel, Uint8Array.of(stream));
}

/** Encodes a CREDIT frame granting `bytes` more of `stream`. */
export function encodeCredit(channel: number, stream: StreamId, bytes: number): Uint8Array {
  const payload = new Uint8Array(5);
  payload[0] = stream;
  new DataView(payload.buffer).setUint32(1, bytes);
  return encodeFrame(FrameType.CREDIT, channel, payload);
}

/** Parses a JSON payload; a malformed one is a framing error naming the frame type. */
export function decodeJson<T>(frame: Frame): T {
  try {
    const value = JSON.parse(decoder.decode(frame.payload));
    if (typeof value !== "object" || value === null) throw new Error("not an object");
    return value as T;
  } catch (error) {
    throw new ProtocolError(
      "framing",
      `frame type 0x${
        frame.type.toString(16)
      } on channel ${frame.channel} has an invalid JSON payload: ${(error as Error).message}`,
    );
  }
}

/** Splits a DATA, EOF or CREDIT payload into its stream and the rest. */
export function decodeStreamPayload(frame: Frame): { stream: number; rest: Uint8Array } {
  if (frame.payload.length < 1) {
    throw new ProtocolError(
      "framing",
      `frame type 0x${frame.type.toString(16)} has no stream byte`,
    );
  }
  return { stream: frame.payload[0], rest: frame.payload.subarray(1) };
}

/** The grant of a CREDIT frame. */
export function decodeCredit(frame: Frame): { stream: number; bytes: number } {
  if (frame.payload.length !== 5) {
    throw new ProtocolError(
      "framing",
      `a CREDIT frame has ${frame.payload.length} payload bytes, not 5`,
    );
  }
  return {
    stream: frame.payload[0],
    bytes: new DataView(frame.payload.buffer, frame.payload.byteOffset).getUint32(1),
  };
}

/** The highest version both sides speak, or undefined. */
export function chooseVersion(
  ours: readonly number[],
  theirs: readonly number[],
): number | undefined {
  const common = ours.filter((version) => theirs.includes(version));
  return common.length === 0 ? undefined : Math.max(...common);
}

/** Checks a received hello; throws a {@link ProtocolError} for anything else. */
export function parseHello(frame: Frame): Hello {
  if (frame.type !== FrameType.HELLO) {
    throw new ProtocolError(
      "framing",
      `expected a hello frame first, got type 0x${
        frame.type.toString(16)
      }: the peer is not a PocketCI agent of a compatible kind`,
    );
  }
  const hello = decodeJson<Hello>(frame);
  if (hello.magic !== MAGIC || !Array.isArray(hello.versions)) {
    throw new ProtocolError("framing", "the hello frame is not a PocketCI agent hello");
  }
  return hello;
}

/** Reads frames from a byte stream, buffering at most one frame. */
export class FrameReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buffer = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;

  /** Reads from `readable` (locks it). */
  constructor(readable: ReadableStream<Uint8Array>) {
    this.#reader = readable.getReader();
  }

  /**
   * The next frame, or undefined at a clean end of stream (between frames). A stream
   * that ends inside a frame, or a length outside the limits, is a {@link ProtocolError}.
   */
  async next(): Promise<Frame | undefined> {
    if (!(await this.#fill(4))) return undefined;
    const length = new DataView(this.#buffer.buffer, this.#start).getUint32(0);
    if (length < 5 || length - 5 > MAX_PAYLOAD) {
      throw new ProtocolError(
        "framing",
        `bad frame length ${length} (allowed 5 to ${
          MAX_PAYLOAD + 5
        }): the stream is not PocketCI agent frames or is out of step`,
      );
    }
    if (!(await this.#fill(4 + length))) {
      throw new ProtocolError("framing", "the stream ended inside a frame");
    }
    const at = this.#start;
    this.#start += 4 + length;
    return {
      type: this.#buffer[at + 4],
      channel: new DataView(this.#buffer.buffer, at + 5).getUint32(0),
      payload: this.#buffer.subarray(at + HEADER_BYTES, at + 4 + length),
    };
  }

  /** Releases the stream (cancelling a pending read). */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }

  /** Makes `count` bytes available from `#start`; false on a clean end with nothing buffered. */
  async #fill(count: number): Promise<boolean> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    while (this.#end - this.#start < count) {
      const { value, done } = await this.#reader.read();
      if (done) {
        if (this.#end === this.#start) return false;
        throw new ProtocolError("framing", "the stream ended inside a frame");
      }
      this.#room(value.length);
      this.#buffer.set(value, this.#end);
      this.#end += value.length;
    }
    return true;
  }

  /** Makes room for `extra` bytes after `#end`: compacts in place, or grows. */
  #room(extra: number): void {
    if (this.#buffer.length - this.#end >= extra) return;
    const kept = this.#end - this.#start;
    if (kept + extra <= this.#buffer.length) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
    } else {
      const grown = new Uint8Array(Math.max(this.#buffer.length * 2, kept + extra));
      grown.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = grown;
    }
    this.#start = 0;
    this.#end = kept;
  }
}
