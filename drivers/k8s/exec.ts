/**
 * `pods/exec` and `pods/attach` over WebSocket through `@kubernetes/client-node`, which offers
 * `v5.channel.k8s.io` first and falls back to `v4.channel.k8s.io` (v5 closes stdin with a
 * close-stream frame, v4 by closing the socket). The exit code comes from the status channel
 * (`NonZeroExitCode` and its `ExitCode` cause).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { Readable, Writable } from "node:stream";
import "./quiet_node.ts";
import { Attach, Exec, type KubeConfig, type V1Status } from "@kubernetes/client-node";
import { DriverError, type OutputSink } from "../contract.ts";
import { CONTAINER } from "./pod_spec.ts";

/** Where an exec's input comes from and its output goes. */
export interface ExecIo {
  /** Bytes or a stream for stdin (absent: no stdin, the command reads end of file). */
  readonly stdin?: Uint8Array | ReadableStream<Uint8Array>;
  /** Receives stdout and stderr. */
  readonly output?: OutputSink;
  /** Closes the connection when aborted (the command itself keeps running). */
  readonly signal?: AbortSignal;
}

function sinkStream(output: OutputSink | undefined, stream: "stdout" | "stderr"): Writable {
  return new Writable({
    write(chunk: Uint8Array, _encoding, callback) {
      output?.(stream, chunk);
      callback();
    },
  });
}

/** The client sends Buffers only (a plain Uint8Array would be taken for a string). */
function stdinStream(stdin: ExecIo["stdin"]): Readable | null {
  if (stdin === undefined) return null;
  if (stdin instanceof Uint8Array) return Readable.from(stdin.length ? [Buffer.from(stdin)] : []);
  const source = stdin;
  return Readable.from((async function* () {
    for await (const chunk of source) {
      yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
  })());
}

/** The exit code a status-channel message stands for. */
export function exitCodeOf(status: V1Status): number | undefined {
  if (status.status === "Success") return 0;
  if (status.reason === "NonZeroExitCode") {
    const cause = status.details?.causes?.find((c) => c.reason === "ExitCode");
    const code = Number(cause?.message);
    return Number.isInteger(code) ? code : undefined;
  }
  return undefined;
}

/** Runs `command` in the pod's container; resolves with its exit code. */
export async function execInPod(
  kc: KubeConfig,
  namespace: string,
  pod: string,
  command: readonly string[],
  io: ExecIo = {},
): Promise<number> {
  let status: V1Status | undefined;
  const stdin = stdinStream(io.stdin);
  const ws = await new Exec(kc).exec(
    namespace,
    pod,
    CONTAINER,
    [...command],
    sinkStream(io.output, "stdout"),
    sinkStream(io.output, "stderr"),
    stdin,
    false,
    (s) => {
      status = s;
    },
  ).catch((error) => {
    throw new DriverError(
      "failed",
      `cannot exec in pod ${pod}: ${(error as Error).message?.split("\n")[0] ?? error}`,
      { cause: error },
    );
  });
  await new Promise<void>((resolve) => {
    if (ws.readyState === ws.CLOSED) return resolve();
    ws.on("close", () => resolve());
    io.signal?.addEventListener("abort", () => ws.close(), { once: true });
  });
  stdin?.destroy();
  if (!status) {
    if (io.signal?.aborted) return 137;
    throw new DriverError("failed", `exec in pod ${pod} ended without an exit status`);
  }
  const code = exitCodeOf(status);
  if (code === undefined) {
    throw new DriverError(
      "failed",
      `exec in pod ${pod} failed: ${status.message ?? status.reason}`,
    );
  }
  return code;
}

/** Writes `bytes` to the standard input of the pod's container (`stdinOnce`) and closes it. */
export async function attachStdin(
  kc: KubeConfig,
  namespace: string,
  pod: string,
  bytes: Uint8Array,
): Promise<void> {
  const ws = await new Attach(kc).attach(
    namespace,
    pod,
    CONTAINER,
    null,
    null,
    stdinStream(bytes),
    false,
  );
  // The socket stays open until the container exits; stdin is closed already (close-stream on
  // v5, so the connection is not needed any more).
  await new Promise<void>((resolve) => {
    if (ws.readyState === ws.CLOSED) return resolve();
    ws.on("close", () => resolve());
    setTimeout(() => {
      ws.close();
      resolve();
    }, 2000);
  });
}
