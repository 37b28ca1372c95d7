/**
 * Services on Fly: a machine in the run's app running the image's own ENTRYPOINT and CMD (or the
 * spec's, as `init.entrypoint`/`init.cmd`), so no wrapper can catch its output: it comes from
 * Fly's app logs (`GET /api/v1/apps/{app}/logs?instance=<machine>`, polled every 500 ms and
 * drained after the machine stopped), `error`/`warning` lines as stderr. Its exit status is the
 * machine's exit event, as for tasks.
 *
 * Tasks reach it by name through a `/etc/hosts` line (name → the machine's private 6PN address)
 * that every machine started after it gets (see scripts.ts). The runner's readiness probes
 * cannot reach the private network, so `dial` goes through a small helper machine on it
 * ({@link NetProbe}): a connection is one buffered exchange (what the runner wrote before its
 * first read goes out, up to 64 KiB of the answer comes back), which is what TCP and HTTP probes
 * need; `exec` probes run in the service machine through the Machines `exec` endpoint.
 *
 * @module
 */

import type { ExitStatus, OutputSink, ProbeConnection, ServiceHandle } from "../contract.ts";
import { ApiError } from "../machines/api_client.ts";
import type { FlyApi } from "./api.ts";
import { exitEvent, waitStopped } from "./job.ts";
import { decode64, encode64, type VolumeHelper } from "./volumes.ts";

/** How often a running service's logs are polled. */
const LOG_POLL_MS = 500;
/** After the machine stopped: lines may still be on their way; wait this long for quiet. */
const LOG_QUIET_MS = 1500;
/** ... but no longer than this. */
const LOG_DRAIN_MAX_MS = 10_000;
/** How long a line may take through Fly's log pipeline before a probe's result is final. */
const LOG_SETTLE_MS = 1000;
/** Fly's init reporting the main process's exit: the last line about it in the log. */
const EXIT_LINE = /^\s*INFO Main child exited\b/;

/**
 * Lines Fly's init and the guest kernel print into the same log as the machine's own process
 * ("INFO Starting init", "INFO Main child exited ...", "[ 1.23] reboot: ..."): not the
 * service's output, so they are dropped (they would crowd its last lines out of a crash report).
 */
const PLATFORM_LINE =
  /^\s*(?:(?:INFO|WARN|ERROR) (?:Starting init|Preparing to run|Main child exited|Starting clean up|Umounting|Sending signal|Process appears|hallpass|Checking filesystem|Mounting|Resized|Setting up swapspace)\b|\[\s*\d+\.\d+\] )/;

/** Whether a log line is Fly's (init, kernel) rather than the service's. */
export function isPlatformLine(message: string): boolean {
  return PLATFORM_LINE.test(message);
}

/**
 * Delivers a machine's app log lines to a sink, polling every 500 ms until `stopped()` says it
 * ended, then until init's "Main child exited" line came through (or, without it, until no line
 * came for 1.5 s; lines take a moment through Fly's log pipeline; at most 10 s). It never fails: a logs API that keeps failing is reported once through `warn` and
 * polled again with backoff. {@link LogFollower.refresh} fetches at once, so what a service
 * printed before a probe passed is delivered by the time the probe returns.
 */
export class LogFollower {
  /** Resolves when the machine ended and its lines were delivered. */
  readonly done: Promise<void>;
  #wake: (() => void) | undefined;
  #ended = false;
  #fetched: ((lines: number) => void)[] = [];

  /** Starts following. */
  constructor(
    api: FlyApi,
    app: string,
    machine: string,
    sink: OutputSink,
    stopped: () => boolean,
    warn: (message: string) => void = () => {},
  ) {
    this.done = this.#follow(api, app, machine, sink, stopped, warn);
  }

  /**
   * Resolves with the number of lines of a page fetched after this call, once it was delivered
   * (0 when the follower ended or `signal` aborted): never waits for the log to go quiet.
   */
  refresh(signal?: AbortSignal): Promise<number> {
    const fetched = new Promise<number>((resolve) => this.#fetched.push(resolve));
    this.#wake?.();
    const aborted = new Promise<number>((resolve) => {
      if (signal?.aborted) resolve(0);
      signal?.addEventListener("abort", () => resolve(0), { once: true });
    });
    return Promise.race([fetched, this.done.then(() => 0), aborted]);
  }

  /**
   * Fetches until a fetch made at least {@link LOG_SETTLE_MS} after the call brought nothing
   * new: what the service printed before now has come through Fly's log pipeline by then.
   */
  async settle(signal?: AbortSignal): Promise<void> {
    const began = Date.now();
    for (;;) {
      const lines = await this.refresh(signal);
      if (signal?.aborted || this.#ended) return;
      if (lines === 0 && Date.now() - began >= LOG_SETTLE_MS) return;
      if (lines === 0) await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  async #follow(
    api: FlyApi,
    app: string,
    machine: string,
    sink: OutputSink,
    stopped: () => boolean,
    warn: (message: string) => void,
  ): Promise<void> {
    const encoder = new TextEncoder();
    let token = "";
    let failures = 0;
    let warned = false;
    let stoppedAt: number | undefined;
    let lastLineAt = 0;
    try {
      for (;;) {
        if (stoppedAt === undefined && stopped()) stoppedAt = Date.now();
        const waiting = this.#fetched;
        this.#fetched = [];
        let lines;
        try {
          const page = await api.logs(app, machine, token);
          token = page.nextToken;
          lines = page.lines;
          failures = 0;
        } catch (error) {
          for (const resolve of waiting) resolve(0);
          failures++;
          if (failures >= 5 && !warned) {
            warned = true;
            warn(
              `fly: reading the logs of machine ${machine} keeps failing (${
                (error as Error).message
              }); its output may be incomplete`,
            );
          }
          // After the stop a failing API is not waited out: what came through is all there is.
          if (
            stoppedAt !== undefined && (failures >= 3 || Date.now() - stoppedAt > LOG_DRAIN_MAX_MS)
          ) {
            return;
          }
          await this.#pause(Math.min(LOG_POLL_MS * 2 ** Math.min(failures, 4), 8000));
          continue;
        }
        let exitSeen = false;
        for (const line of lines) {
          if (line.instance !== machine || (line.provider !== "" && line.provider !== "app")) {
            continue;
          }
          if (EXIT_LINE.test(line.message)) exitSeen = true;
          if (isPlatformLine(line.message)) continue;
          const stream = line.level === "error" || line.level === "warning" ? "stderr" : "stdout";
          sink(stream, encoder.encode(`${line.message}\n`));
        }
        for (const resolve of waiting) resolve(lines.length);
        // Init logs the main process's exit after everything it printed: nothing more to wait for.
        if (stoppedAt !== undefined && exitSeen) return;
        if (stoppedAt !== undefined && Date.now() - stoppedAt >= LOG_DRAIN_MAX_MS) return;
        if (lines.length > 0) {
          lastLineAt = Date.now();
          continue;
        }
        if (stoppedAt !== undefined) {
          const now = Date.now();
          if (now - Math.max(stoppedAt, lastLineAt) >= LOG_QUIET_MS) return;
          if (now - stoppedAt >= LOG_DRAIN_MAX_MS) return;
        }
        await this.#pause(LOG_POLL_MS);
      }
    } finally {
      this.#ended = true;
      for (const resolve of this.#fetched) resolve(0);
      this.#fetched = [];
    }
  }

  #pause(ms: number): Promise<void> {
    if (this.#fetched.length > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}

/** A lazily started helper machine on the app's private network that opens probe connections. */
export class NetProbe {
  readonly #start: () => Promise<VolumeHelper>;
  readonly #discard: (helper: VolumeHelper) => Promise<void>;
  #helper: Promise<VolumeHelper> | undefined;

  /**
   * `start` creates the helper machine (recorded by the caller) the first time it is needed;
   * `discard` destroys one that stopped answering (Fly stopped it), so the next probe starts
   * another.
   */
  constructor(
    start: () => Promise<VolumeHelper>,
    discard: (helper: VolumeHelper) => Promise<void> = () => Promise.resolve(),
  ) {
    this.#start = start;
    this.#discard = discard;
  }

  /** The helper, started now if it is not yet; a start that fails is tried again next time. */
  helper(): Promise<VolumeHelper> {
    if (this.#helper === undefined) {
      const starting = this.#start();
      this.#helper = starting;
      starting.catch(() => {
        if (this.#helper === starting) this.#helper = undefined;
      });
    }
    return this.#helper;
  }

  /** Runs a probe command in the helper; a helper that is gone is discarded first. */
  async #run(helper: VolumeHelper, command: string[], what: string): Promise<string> {
    try {
      return await helper.run(command, what, true, PROBE_EXEC_SECONDS);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 412)) {
        if (this.#helper !== undefined && await this.#helper.catch(() => undefined) === helper) {
          this.#helper = undefined;
          await this.#discard(helper).catch(() => {});
        }
      }
      throw error;
    }
  }

  /**
   * A connection to `ip:port` from the private network. Rejects when nothing listens (refused
   * or no answer to the connect within 2 s), or when `signal` aborts first.
   */
  async dial(ip: string, port: number, signal: AbortSignal): Promise<ProbeConnection> {
    signal.throwIfAborted();
    const helper = await abortable(this.helper(), signal);
    // Connected: nc ends by itself (0) or is still talking when the 3 s timeout ends it (>= 124).
    // Fly's private network is IPv6: a server bound to 0.0.0.0 only is not reachable on it.
    await abortable(
      this.#run(helper, [
        "sh",
        "-c",
        'timeout 3 nc -w 2 "$1" "$2" </dev/null >/dev/null 2>&1; s=$?; [ "$s" -eq 0 ] || [ "$s" -ge 124 ] || { echo "nothing listens on [$1]:$2 (on Fly the server must listen on :: (IPv6), not only 0.0.0.0)" >&2; exit 1; }',
        "sh",
        ip,
        String(port),
      ], `probe ${ip}:${port}`),
      signal,
    );
    return exchangeConnection(async (request) => {
      const answer = await this.#run(helper, [
        "sh",
        "-c",
        'printf %s "$3" | base64 -d | timeout 5 nc -w 2 "$1" "$2" | head -c 65536 | base64',
        "sh",
        ip,
        String(port),
        encode64(request),
      ], `probe ${ip}:${port}`);
      return decode64(answer);
    });
  }
}

/** The Fly-side timeout of one probe command (its own work is bounded by `timeout 5`). */
const PROBE_EXEC_SECONDS = 10;

/** `promise`, or a rejection with the signal's reason once it aborts. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * A {@link ProbeConnection} made of one exchange: the bytes written before the first read are
 * sent by `exchange`, whose answer is what the connection reads before it ends.
 */
export function exchangeConnection(
  exchange: (request: Uint8Array) => Promise<Uint8Array>,
): ProbeConnection {
  const written: Uint8Array[] = [];
  let closed = false;
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const size = written.reduce((n, part) => n + part.length, 0);
      const request = new Uint8Array(size);
      let at = 0;
      for (const part of written) {
        request.set(part, at);
        at += part.length;
      }
      const answer = await exchange(request);
      if (!closed && answer.length > 0) controller.enqueue(answer);
      controller.close();
    },
  }, { highWaterMark: 0 });
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      written.push(chunk.slice());
    },
  });
  return {
    readable,
    writable,
    close() {
      closed = true;
    },
  };
}

/** What a {@link FlyService} needs from the driver. */
export interface FlyServiceContext {
  /** The API. */
  readonly api: FlyApi;
  /** The app. */
  readonly app: string;
  /** The longest single `wait` request, in seconds. */
  readonly waitSeconds: number;
  /** Opens probe connections on the private network. */
  readonly probe: NetProbe;
  /** Stops the machine (`SIGTERM` with a grace in seconds, or `SIGKILL` when 0). */
  readonly stopMachine: (graceMs: number) => Promise<void>;
  /** Destroys the machine, forgets its record and gives its volumes back. */
  readonly finish: () => Promise<void>;
  /** Called once the service ended (its name leaves new machines' hosts files). */
  readonly onEnded: () => void;
  /** Reports a problem that does not end the service (its logs cannot be read). */
  readonly warn: (message: string) => void;
}

/** A started service machine. */
export class FlyService implements ServiceHandle {
  /** The service's run-scoped ID. */
  readonly id: string;
  /** The machine's ID. */
  readonly machine: string;
  /** Its private address (what tasks' hosts lines map the service's name to). */
  readonly ip: string;
  readonly #ctx: FlyServiceContext;
  readonly #completion: Promise<ExitStatus>;
  readonly #logs: LogFollower;
  #ended = false;
  #stopping: Promise<void> | undefined;

  /** Follows the started machine: its logs into `output`, its end into {@link wait}. */
  constructor(id: string, machine: string, ip: string, ctx: FlyServiceContext, output: OutputSink) {
    this.id = id;
    this.machine = machine;
    this.ip = ip;
    this.#ctx = ctx;
    let stopped = false;
    const waiter = waitStopped(ctx.api, ctx.app, machine, ctx.waitSeconds).finally(() =>
      stopped = true
    );
    const logs = new LogFollower(ctx.api, ctx.app, machine, output, () => stopped, ctx.warn);
    this.#logs = logs;
    this.#completion = (async () => {
      try {
        await waiter;
        await logs.done;
        return await exitEvent(ctx.api, ctx.app, machine) ?? { code: -1 };
      } finally {
        this.#ended = true;
        ctx.onEnded();
      }
    })();
    this.#completion.catch(() => {});
  }

  /** Resolves when the machine stopped and its output was delivered. */
  wait(): Promise<ExitStatus> {
    return this.#completion;
  }

  /**
   * SIGTERM (SIGKILL after the grace, by Fly), then destroys the machine; a service that ended
   * already is only destroyed.
   */
  stop(graceMs: number): Promise<void> {
    this.#ctx.onEnded();
    this.#stopping ??= (async () => {
      try {
        if (!this.#ended) await this.#ctx.stopMachine(graceMs);
        await this.#completion.catch(() => {});
      } finally {
        await this.#ctx.finish();
      }
    })();
    return this.#stopping;
  }

  /** Services on Fly publish no port on this host. */
  hostPort(_port: number): number | undefined {
    return undefined;
  }

  /**
   * A probe connection to the machine's port, from the app's private network; what the service
   * printed so far is delivered before it resolves (see {@link LogFollower.settle}).
   */
  async dial(port: number, signal: AbortSignal): Promise<ProbeConnection> {
    const connection = await this.#ctx.probe.dial(this.ip, port, signal);
    await this.#logs.settle(signal);
    return connection;
  }

  /** Runs a probe command in the service machine; after a pass, the output so far comes first. */
  async exec(command: readonly string[], signal: AbortSignal): Promise<ExitStatus> {
    signal.throwIfAborted();
    const result = await abortable(
      this.#ctx.api.exec(this.#ctx.app, this.machine, command, true, PROBE_EXEC_SECONDS),
      signal,
    );
    if (result.exit_code === 0) await this.#logs.settle(signal);
    return { code: result.exit_code };
  }
}
