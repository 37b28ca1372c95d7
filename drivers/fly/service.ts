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
import type { FlyApi } from "./api.ts";
import { exitEvent, waitStopped } from "./job.ts";
import { decode64, encode64, type VolumeHelper } from "./volumes.ts";

/** How often a running service's logs are polled. */
const LOG_POLL_MS = 500;

/**
 * Delivers a machine's app log lines to a sink, polling every 500 ms until `stopped()` says it
 * ended, then draining the pages that are left (the logs API keeps them after the machine is
 * gone). {@link LogFollower.refresh} fetches at once, so what a service printed before a probe
 * passed is delivered by the time the probe returns.
 */
export class LogFollower {
  /** Resolves when the machine ended and every line was delivered. */
  readonly done: Promise<void>;
  #wake: (() => void) | undefined;
  #fetched: (() => void)[] = [];

  /** Starts following. */
  constructor(
    api: FlyApi,
    app: string,
    machine: string,
    sink: OutputSink,
    stopped: () => boolean,
  ) {
    this.done = this.#follow(api, app, machine, sink, stopped);
  }

  /** Resolves after the next page was fetched and delivered (at once, not at the next poll). */
  refresh(): Promise<void> {
    const fetched = new Promise<void>((resolve) => this.#fetched.push(resolve));
    this.#wake?.();
    return Promise.race([fetched, this.done.catch(() => {})]);
  }

  async #follow(
    api: FlyApi,
    app: string,
    machine: string,
    sink: OutputSink,
    stopped: () => boolean,
  ): Promise<void> {
    const encoder = new TextEncoder();
    let token = "";
    let failures = 0;
    for (;;) {
      const ended = stopped();
      const waiting = this.#fetched;
      this.#fetched = [];
      let lines;
      try {
        const page = await api.logs(app, machine, token);
        token = page.nextToken;
        lines = page.lines;
        failures = 0;
      } catch (error) {
        this.#fetched.push(...waiting);
        if (++failures >= 5) throw error;
        await this.#pause();
        continue;
      }
      for (const line of lines) {
        if (line.instance !== machine || (line.provider !== "" && line.provider !== "app")) {
          continue;
        }
        const stream = line.level === "error" || line.level === "warning" ? "stderr" : "stdout";
        sink(stream, encoder.encode(`${line.message}\n`));
      }
      if (lines.length > 0) {
        this.#fetched.push(...waiting);
        continue;
      }
      for (const resolve of waiting) resolve();
      if (ended) return;
      await this.#pause();
    }
  }

  #pause(): Promise<void> {
    if (this.#fetched.length > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, LOG_POLL_MS);
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
  #helper: Promise<VolumeHelper> | undefined;

  /** `start` creates the helper machine (recorded by the caller) the first time it is needed. */
  constructor(start: () => Promise<VolumeHelper>) {
    this.#start = start;
  }

  /** The helper, started now if it is not yet. */
  helper(): Promise<VolumeHelper> {
    this.#helper ??= this.#start();
    this.#helper.catch(() => this.#helper = undefined);
    return this.#helper;
  }

  /** Whether the helper was ever started (and so needs destroying). */
  get started(): Promise<VolumeHelper> | undefined {
    return this.#helper;
  }

  /**
   * A connection to `ip:port` from the private network. Rejects when nothing listens (refused
   * or no answer to the connect within 2 s).
   */
  async dial(ip: string, port: number, signal: AbortSignal): Promise<ProbeConnection> {
    signal.throwIfAborted();
    const helper = await this.helper();
    // Connected: nc ends by itself (0) or is still talking when the 3 s timeout ends it (>= 124).
    await helper.run([
      "sh",
      "-c",
      'timeout 3 nc -w 2 "$1" "$2" </dev/null >/dev/null 2>&1; s=$?; [ "$s" -eq 0 ] || [ "$s" -ge 124 ] || { echo "nothing listens on $1:$2" >&2; exit 1; }',
      "sh",
      ip,
      String(port),
    ], `probe ${ip}:${port}`);
    return exchangeConnection(async (request) => {
      const answer = await helper.run([
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
    const logs = new LogFollower(ctx.api, ctx.app, machine, output, () => stopped);
    this.#logs = logs;
    this.#completion = (async () => {
      try {
        await waiter;
        await logs.done.catch(() => {});
        return await exitEvent(ctx.api, ctx.app, machine) ?? { code: -1 };
      } finally {
        ctx.onEnded();
      }
    })();
    this.#completion.catch(() => {});
  }

  /** Resolves when the machine stopped. */
  wait(): Promise<ExitStatus> {
    return this.#completion;
  }

  /** SIGTERM (SIGKILL after the grace, by Fly), then destroys the machine. */
  stop(graceMs: number): Promise<void> {
    this.#ctx.onEnded();
    this.#stopping ??= (async () => {
      try {
        await this.#ctx.stopMachine(graceMs);
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
   * A probe connection to the machine's port, from the app's private network; the output so far
   * is delivered before it resolves.
   */
  async dial(port: number, signal: AbortSignal): Promise<ProbeConnection> {
    const connection = await this.#ctx.probe.dial(this.ip, port, signal);
    await this.#logs.refresh();
    return connection;
  }

  /** Runs a probe command in the service machine; the output so far is delivered first. */
  async exec(command: readonly string[], signal: AbortSignal): Promise<ExitStatus> {
    signal.throwIfAborted();
    const result = await this.#ctx.api.exec(this.#ctx.app, this.machine, command, true, 30);
    await this.#logs.refresh();
    return { code: result.exit_code };
  }
}
