/**
 * PUT, GET and FS channels in the agent: a tar from the host extracted into a guest
 * directory (never outside it), a guest directory packed into a tar sent within the host's
 * window, and the few filesystem operations a driver needs to lay out a task (mkdir,
 * remove, symlink).
 *
 * @module
 */

import { ArchivePathError, extractTar, packDirectory, TarError } from "../drivers/archive/mod.ts";
import {
  encodeCredit,
  encodeData,
  encodeEof,
  encodeJson,
  type ErrorBody,
  FrameType,
  type FsRequest,
  type GetRequest,
  type PutRequest,
  Stream,
} from "./protocol.ts";
import type { FrameWriter } from "./frame_writer.ts";
import { ReceiveWindow, SendWindow } from "./window.ts";
import { overrun } from "./exec.ts";
import { pumpWithCredits } from "./pump.ts";

/** Sends an ERROR on `channel`. */
export function sendError(
  writer: FrameWriter,
  channel: number,
  code: ErrorBody["code"],
  message: string,
): Promise<void> {
  return writer.trySend(encodeJson(FrameType.ERROR, channel, { code, message }));
}

/** The error code and message for a failed file operation. */
export function fileError(error: unknown): ErrorBody {
  if (error instanceof ArchivePathError) {
    return { code: error.reason === "not_found" ? "not_found" : "invalid", message: error.message };
  }
  if (error instanceof TarError) return { code: "invalid", message: error.message };
  if (error instanceof Deno.errors.NotFound) {
    return { code: "not_found", message: (error as Error).message };
  }
  return { code: "failed", message: (error as Error).message };
}

/** A PUT in progress: bytes arrive as DATA on stream 0 and are extracted as they come. */
export class PutChannel {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #channel: number;
  readonly #frames: FrameWriter;
  #chain: Promise<void> = Promise.resolve();
  readonly #window = new ReceiveWindow();
  /** Resolves once DONE or ERROR was sent. */
  readonly done: Promise<void>;

  /** Starts extracting into `request.path`. */
  constructor(channel: number, request: PutRequest, frames: FrameWriter) {
    this.#channel = channel;
    this.#frames = frames;
    const pipe = new TransformStream<Uint8Array, Uint8Array>();
    this.#writer = pipe.writable.getWriter();
    this.done = extractTar(pipe.readable, request.path).then(
      () => frames.trySend(encodeJson(FrameType.DONE, channel, {})),
      async (error) => {
        await pipe.readable.cancel().catch(() => {});
        const body = fileError(error);
        await sendError(frames, channel, body.code, body.message);
      },
    );
  }

  /** A chunk of the tar: queued for the extractor, credited back once it took it. */
  data(bytes: Uint8Array): void {
    if (!this.#window.receive(bytes.length)) throw overrun(this.#channel);
    const copy = bytes.slice();
    this.#chain = this.#chain.then(async () => {
      await this.#writer.write(copy).catch(() => {});
      this.#window.granted(copy.length);
      await this.#frames.trySend(encodeCredit(this.#channel, Stream.INPUT, copy.length));
    });
  }

  /** The tar ended. */
  end(): void {
    this.#chain = this.#chain.then(() => this.#writer.close().catch(() => {}));
  }

  /** The connection went away. */
  abandon(): void {
    this.#writer.abort().catch(() => {});
  }
}

/** A GET in progress: the packed tar goes out as DATA on stream 1, then EOF. */
export class GetChannel {
  readonly window = new SendWindow();
  /** Resolves once the tar (or an ERROR) was sent. */
  readonly done: Promise<void>;

  /** Starts packing `request.path`. */
  constructor(channel: number, request: GetRequest, frames: FrameWriter) {
    this.done = (async () => {
      let stream: ReadableStream<Uint8Array>;
      try {
        stream = await packDirectory(
          request.path,
          request.paths === undefined ? {} : { paths: request.paths },
        );
      } catch (error) {
        const body = fileError(error);
        return await sendError(frames, channel, body.code, body.message);
      }
      const reader = stream.getReader();
      try {
        await pumpWithCredits(
          reader,
          this.window,
          (bytes) => frames.send(encodeData(channel, Stream.STDOUT, bytes)),
        );
        await frames.trySend(encodeEof(channel, Stream.STDOUT));
      } catch (error) {
        await reader.cancel().catch(() => {});
        const body = fileError(error);
        await sendError(frames, channel, body.code, body.message);
      }
    })();
  }
}

/** Runs one FS request; resolves with nothing or rejects with the failure. */
export async function runFs(request: FsRequest): Promise<void> {
  switch (request.op) {
    case "mkdir":
      await Deno.mkdir(request.path, { recursive: true });
      return;
    case "remove":
      await Deno.remove(request.path, { recursive: true }).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
      return;
    case "symlink":
      await Deno.symlink(request.target, request.path);
      return;
    default:
      throw new Error(`unknown fs operation ${JSON.stringify((request as { op: unknown }).op)}`);
  }
}
