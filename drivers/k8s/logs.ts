/**
 * Live output of a pod from `pods/log` with `timestamps=true`: each line is delivered once, in
 * order. When the stream drops while the container runs, the follow is reopened with `sinceTime`
 * (the API's whole-second precision, so some lines come again) and lines already delivered are
 * skipped by their timestamp and their position among lines of the same timestamp. After the
 * container ended, one last plain read delivers whatever the follow had not (a final line
 * without a newline included).
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import type { OutputSink } from "../contract.ts";
import { type KubeHttp, statusOf } from "./http.ts";

const NL = 0x0a;
const SPACE = 0x20;

/** Nanoseconds since the epoch of an RFC 3339 timestamp with up to 9 fractional digits. */
export function timestampNanos(stamp: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(stamp);
  if (!m) return undefined;
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(seconds)) return undefined;
  return BigInt(seconds) * 1_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"));
}

/** Whole-second RFC 3339 of a nanosecond timestamp (rounded down), as `sinceTime` takes it. */
export function sinceTimeOf(nanos: bigint): string {
  const ms = Number(nanos / 1_000_000_000n) * 1000;
  return new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");
}

/** Keeps track of what was delivered, so a re-read can skip it. */
export class LineDeduper {
  #last = -1n;
  #countAtLast = 0;
  #seenAtCurrent = 0;
  #current = -1n;

  /** The timestamp of the last delivered line (-1 when none). */
  get last(): bigint {
    return this.#last;
  }

  /** Starts a new read (from `sinceTime`). */
  restart(): void {
    this.#current = -1n;
    this.#seenAtCurrent = 0;
  }

  /** Whether a line with this timestamp is new; counts it when it is. */
  accept(ts: bigint): boolean {
    if (ts !== this.#current) {
      this.#current = ts;
      this.#seenAtCurrent = 0;
    }
    this.#seenAtCurrent++;
    if (ts < this.#last) return false;
    if (ts === this.#last && this.#seenAtCurrent <= this.#countAtLast) return false;
    if (ts === this.#last) this.#countAtLast++;
    else {
      this.#last = ts;
      this.#countAtLast = 1;
    }
    return true;
  }
}

/** What a log follower needs to know about its pod. */
export interface LogSource {
  /** The API client. */
  readonly http: KubeHttp;
  /** Kubernetes namespace. */
  readonly namespace: string;
  /** The pod. */
  readonly pod: string;
  /** The container. */
  readonly container: string;
  /** Whether the container has ended (or the pod is gone). */
  readonly ended: () => boolean;
  /** Resolves once `ended()` may have changed (the pod's next update), or after a short wait. */
  readonly changed: () => Promise<void>;
}

/**
 * Delivers the pod's output to `output` as `stdout` until the container ended and everything
 * was read. Resolves when done (also when the pod was deleted).
 */
export async function followLogs(
  source: LogSource,
  output: OutputSink,
  signal?: AbortSignal,
): Promise<void> {
  const dedupe = new LineDeduper();
  const path = `/api/v1/namespaces/${source.namespace}/pods/${source.pod}/log`;
  const read = async (follow: boolean): Promise<"done" | "dropped" | "gone"> => {
    dedupe.restart();
    let res: IncomingMessage;
    try {
      res = await source.http.request("GET", path, {
        query: {
          container: source.container,
          follow: follow ? "true" : undefined,
          timestamps: "true",
          sinceTime: dedupe.last >= 0n ? sinceTimeOf(dedupe.last) : undefined,
        },
        signal,
      });
    } catch (error) {
      const status = statusOf(error);
      if (status === 404) return "gone";
      if (signal?.aborted) return "gone";
      return "dropped";
    }
    let pending = new Uint8Array(0);
    const emitLine = (line: Uint8Array) => {
      const space = line.indexOf(SPACE);
      const ts = space > 0
        ? timestampNanos(new TextDecoder().decode(line.subarray(0, space)))
        : undefined;
      if (ts === undefined) {
        output("stdout", line);
        return;
      }
      if (dedupe.accept(ts)) output("stdout", line.subarray(space + 1));
    };
    let complete = true;
    try {
      for await (const chunk of res) {
        const bytes = chunk as Uint8Array;
        let data = bytes;
        if (pending.length) {
          data = new Uint8Array(pending.length + bytes.length);
          data.set(pending);
          data.set(bytes, pending.length);
        }
        let start = 0;
        let nl: number;
        while ((nl = data.indexOf(NL, start)) >= 0) {
          emitLine(data.subarray(start, nl + 1));
          start = nl + 1;
        }
        pending = data.slice(start);
      }
    } catch {
      complete = false;
    }
    if (res.readableAborted || !res.complete) complete = false;
    // A final line without a newline is only real when the whole answer arrived and the
    // container has ended (the next follow would otherwise repeat it in full).
    if (pending.length && complete && !follow) emitLine(pending);
    return complete ? "done" : "dropped";
  };
  for (let attempt = 0; !signal?.aborted; attempt++) {
    const result = await read(true);
    if (result === "gone") return;
    if (source.ended()) break;
    if (result === "done") await source.changed();
    else await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** Math.min(attempt, 4))));
  }
  for (let i = 0; i < 5 && !signal?.aborted; i++) {
    const result = await read(false);
    if (result !== "dropped") return;
  }
}
