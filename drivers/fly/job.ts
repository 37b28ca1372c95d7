/**
 * Following one command in a Fly machine: reading its output files through `exec` until the
 * command has ended and every byte was delivered (see scripts.ts), waiting for the machine to
 * stop with the `wait` endpoint for as long as it takes (a 408 after Fly's 60 s cap means "not
 * yet", never "done"), and reading the exit code and OOM flag from the machine's exit event.
 *
 * @module
 */

import { ApiError, isNotFound } from "../machines/api_client.ts";
import type { ExitStatus, OutputSink } from "../contract.ts";
import { sleep } from "../timers.ts";
import type { FlyApi } from "./api.ts";
import { FLY_DIR, parseRead } from "./scripts.ts";

/** Bytes of each stream one read returns at most. */
const READ_MAX = 1024 * 1024;

/** How a followed command ended, as its job directory says. */
export interface JobOutcome {
  /** Its exit status, when it ended by itself and everything was read. */
  readonly status?: number;
  /** The command did not exist. */
  readonly notFound: boolean;
}

/** Where the command runs. */
export interface JobTarget {
  /** The API. */
  readonly api: FlyApi;
  /** The app. */
  readonly app: string;
  /** The machine ID. */
  readonly machine: string;
  /** The job directory in the machine. */
  readonly dir: string;
}

/**
 * Delivers the job's output to `sink` until it ended and was read whole; `release` then lets a
 * task machine exit. Returns early (without a status) once `gone()` says the machine stopped.
 */
export async function followJob(
  target: JobTarget,
  sink: OutputSink,
  options: { readonly release: boolean; readonly gone: () => boolean },
): Promise<JobOutcome> {
  let outOffset = 0;
  let errOffset = 0;
  let idle = 50;
  for (;;) {
    let text: string;
    try {
      const result = await target.api.exec(target.app, target.machine, [
        "/bin/sh",
        `${FLY_DIR}/read.sh`,
        target.dir,
        String(outOffset),
        String(errOffset),
        String(READ_MAX),
      ], true);
      if (result.exit_code !== 0) {
        if (options.gone()) return { notFound: false };
        throw new Error(`reading the output failed: ${(result.stderr ?? "").trim()}`);
      }
      text = result.stdout ?? "";
    } catch (error) {
      if (
        options.gone() || isNotFound(error) || (error instanceof ApiError && error.status === 412)
      ) {
        return { notFound: false };
      }
      throw error;
    }
    const read = parseRead(text);
    if (read.out.length > 0) sink("stdout", read.out);
    if (read.err.length > 0) sink("stderr", read.err);
    outOffset += read.out.length;
    errOffset += read.err.length;
    if (read.status !== undefined && outOffset >= read.outSize && errOffset >= read.errSize) {
      if (options.release) {
        await target.api.exec(target.app, target.machine, ["touch", `${target.dir}/release`], true)
          .catch(() => {});
      }
      return { status: read.status, notFound: read.notFound };
    }
    const more = outOffset < read.outSize || errOffset < read.errSize;
    if (read.out.length + read.err.length > 0) idle = 50;
    if (!more) {
      if (options.gone()) return { notFound: false };
      await sleep(idle);
      idle = Math.min(idle * 2, 1000);
    }
  }
}

/**
 * Waits until the machine is stopped or destroyed, looping over the `wait` endpoint's capped
 * timeout; a failed wait falls back to reading the machine's state.
 */
export async function waitStopped(
  api: FlyApi,
  app: string,
  machine: string,
  timeoutSeconds = 60,
): Promise<void> {
  for (;;) {
    try {
      if (await api.waitState(app, machine, "stopped", timeoutSeconds)) return;
    } catch (error) {
      if (isNotFound(error)) return;
      const state = await api.getMachine(app, machine).then((m) => m.state, (e) => {
        if (isNotFound(e)) return "destroyed";
        return "unknown";
      });
      if (state === "stopped" || state === "destroyed" || state === "failed") return;
      await sleep(1000);
    }
  }
}

/** The exit status from an exit event's code (128+N for a signal, Fly's negative code too). */
export function exitStatusOf(code: number, oom: boolean, signal?: number): ExitStatus {
  let status: number = code;
  let sig: number | undefined;
  if (code < 0 && signal !== undefined && signal > 0) status = 128 + signal;
  if (status > 128 && status <= 128 + 64) sig = status - 128;
  return {
    code: status,
    ...(sig === undefined ? {} : { signal: sig }),
    ...(oom ? { oomKilled: true } : {}),
  };
}

/**
 * The machine's exit status from its newest exit event, retried a few times because Fly's event
 * feed is eventually consistent; `undefined` when it never shows.
 */
export async function exitEvent(
  api: FlyApi,
  app: string,
  machine: string,
): Promise<ExitStatus | undefined> {
  let backoff = 250;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const got = await api.getMachine(app, machine);
      const exit = got.events?.find((e) => e.type === "exit" && e.request?.exit_event);
      const event = exit?.request?.exit_event;
      if (event && typeof event.exit_code === "number") {
        return exitStatusOf(event.exit_code, event.oom_killed === true, event.signal);
      }
    } catch (error) {
      if (isNotFound(error)) return undefined;
    }
    await sleep(backoff);
    backoff *= 2;
  }
  return undefined;
}
