/**
 * One host connection in the agent: the hello exchange (a version mismatch is answered
 * with an ERROR naming both sides' versions, then the connection closes), then frames
 * dispatched to their channels. Several channels run at once. When the connection ends,
 * every process it started is killed.
 *
 * @module
 */

import {
  chooseVersion,
  decodeJson,
  decodeStreamPayload,
  encodeFrame,
  encodeJson,
  type ExecRequest,
  type Frame,
  FrameReader,
  FrameType,
  type FsRequest,
  type GetRequest,
  type Hello,
  type KillBody,
  MAGIC,
  parseHello,
  PROTOCOL_VERSIONS,
  ProtocolError,
  type PutRequest,
  Stream,
} from "./protocol.ts";
import { FrameWriter } from "./frame_writer.ts";
import { ExecChannel, ExecStartError } from "./exec.ts";
import { fileError, GetChannel, PutChannel, runFs, sendError } from "./files.ts";
import type { Logger } from "./log.ts";

/** What the agent runs a session with. */
export interface SessionOptions {
  /** The versions this agent speaks (tests give others). */
  readonly versions?: readonly number[];
  /** Where diagnostics go. */
  readonly log: Logger;
}

/** A byte stream pair: a socket or a character device. */
export interface Duplex {
  /** Bytes from the host. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the host. */
  readonly writable: WritableStream<Uint8Array>;
}

type Channel = ExecChannel | PutChannel | GetChannel;

/** Serves one connection until it ends; never throws. */
export async function serveSession(conn: Duplex, options: SessionOptions): Promise<void> {
  const versions = options.versions ?? PROTOCOL_VERSIONS;
  const reader = new FrameReader(conn.readable);
  const writer = new FrameWriter(conn.writable);
  const channels = new Map<number, Channel>();
  const closed = new Error("the host connection closed");
  try {
    const first = await reader.next();
    if (first === undefined) return;
    const hello = parseHello(first);
    const version = chooseVersion(versions, hello.versions);
    if (version === undefined) {
      throw new ProtocolError(
        "version",
        `protocol version mismatch: the host speaks ${
          hello.versions.join(", ")
        }, this agent speaks ${
          versions.join(", ")
        }; use an agent from the same PocketCI version as the host`,
      );
    }
    const reply: Hello = {
      magic: MAGIC,
      versions,
      version,
      software: `pocketci-agent ${Deno.build.os} ${Deno.build.arch}`,
    };
    await writer.send(encodeJson(FrameType.HELLO, 0, reply));
    while (true) {
      const frame = await reader.next();
      if (frame === undefined) return;
      await dispatch(frame, channels, writer, options);
    }
  } catch (error) {
    if (error instanceof ProtocolError) {
      options.log(`closing the connection: ${error.message}`);
      await sendError(writer, 0, error.code, error.message);
    } else if (!writer.closed) {
      options.log(`connection failed: ${(error as Error).message}`);
    }
  } finally {
    for (const channel of channels.values()) {
      if (channel instanceof ExecChannel) channel.abandon(closed);
      else if (channel instanceof PutChannel) channel.abandon();
      else channel.window.close(closed);
    }
    await reader.cancel();
    await writer.close();
  }
}

async function dispatch(
  frame: Frame,
  channels: Map<number, Channel>,
  writer: FrameWriter,
  options: SessionOptions,
): Promise<void> {
  const { type, channel } = frame;
  const opens = type === FrameType.EXEC || type === FrameType.PUT || type === FrameType.GET ||
    type === FrameType.FS;
  if (opens) {
    if (channel === 0 || channels.has(channel)) {
      throw new ProtocolError("framing", `channel ${channel} cannot be opened: it is 0 or in use`);
    }
  }
  const forget = (done: Promise<void>) => done.finally(() => channels.delete(channel));
  switch (type) {
    case FrameType.PING:
      await writer.send(encodeFrame(FrameType.PONG, channel, frame.payload));
      return;
    case FrameType.HELLO:
      throw new ProtocolError("framing", "a second hello on an open connection");
    case FrameType.EXEC: {
      const request = decodeJson<ExecRequest>(frame);
      try {
        const exec = ExecChannel.start(channel, request, writer);
        channels.set(channel, exec);
        await writer.send(encodeJson(FrameType.STARTED, channel, { pid: exec.pid }));
        void forget(exec.done);
      } catch (error) {
        if (!(error instanceof ExecStartError)) throw error;
        await sendError(writer, channel, error.code, error.message);
      }
      return;
    }
    case FrameType.PUT: {
      const put = new PutChannel(channel, decodeJson<PutRequest>(frame), writer);
      channels.set(channel, put);
      void forget(put.done);
      return;
    }
    case FrameType.GET: {
      const get = new GetChannel(channel, decodeJson<GetRequest>(frame), writer);
      channels.set(channel, get);
      void forget(get.done);
      return;
    }
    case FrameType.FS: {
      const request = decodeJson<FsRequest>(frame);
      // Run without blocking the reader; replies carry the channel.
      void runFs(request).then(
        () => writer.trySend(encodeJson(FrameType.DONE, channel, {})),
        (error) => {
          const body = fileError(error);
          return sendError(writer, channel, body.code, body.message);
        },
      );
      return;
    }
    case FrameType.KILL: {
      const exec = channels.get(channel);
      const body = decodeJson<KillBody>(frame);
      if (exec instanceof ExecChannel) {
        try {
          exec.kill(body.signal as Deno.Signal);
        } catch (error) {
          options.log(`kill ${body.signal} on channel ${channel}: ${(error as Error).message}`);
        }
      }
      return;
    }
    case FrameType.DATA:
    case FrameType.EOF:
    case FrameType.CREDIT: {
      const target = channels.get(channel);
      const { stream, rest } = decodeStreamPayload(frame);
      if (target instanceof ExecChannel) target.onFrame(frame, stream, rest);
      else if (target instanceof PutChannel && stream === Stream.INPUT) {
        if (type === FrameType.DATA) target.data(rest);
        else if (type === FrameType.EOF) target.end();
      } else if (target instanceof GetChannel && type === FrameType.CREDIT) {
        target.window.grant(new DataView(rest.buffer, rest.byteOffset).getUint32(0));
      }
      // Frames for a channel that already ended are dropped: they crossed its end.
      return;
    }
    default:
      throw new ProtocolError("framing", `unknown frame type 0x${type.toString(16)}`);
  }
}
