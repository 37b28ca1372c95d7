/**
 * The PocketCI guest agent: runs commands, streams their output and moves files for the
 * host, over the protocol of `agent/protocol.ts` (`agent/README.md`).
 *
 * Usage: `deno run -A --unstable-vsock agent/main.ts --listen=ENDPOINT`, where ENDPOINT is
 * `vsock:PORT` (Apple VZ), `unix:/PATH` (tests) or `stdio` (a character device such as a
 * virtio-serial port opened read-write on stdin and stdout: `--listen=stdio <>/dev/vport0p2 >&0`). It prints `pocketci-agent: ready` on
 * stderr once it accepts connections.
 *
 * @module
 */

import { parseEndpoint, serveEndpoint } from "./transport.ts";
import { serveSession } from "./session.ts";
import { stderrLogger } from "./log.ts";
import { killAllGroups } from "./exec.ts";

/** Parsed command line. */
export interface AgentArgs {
  /** `--listen=` value. */
  readonly listen: string;
  /** `--protocol-versions=1,2` (tests of the version check). */
  readonly versions?: readonly number[];
  /** `--exit-on-stdin-eof`: the agent runs on the host for tests and dies with its parent. */
  readonly exitOnStdinEof?: boolean;
}

/** Parses the command line; throws a one-line error naming the bad argument. */
export function parseArgs(args: readonly string[]): AgentArgs {
  let listen: string | undefined;
  let versions: number[] | undefined;
  let exitOnStdinEof = false;
  for (const arg of args) {
    if (arg === "--exit-on-stdin-eof") exitOnStdinEof = true;
    else if (arg.startsWith("--listen=")) listen = arg.slice("--listen=".length);
    else if (arg.startsWith("--protocol-versions=")) {
      versions = arg.slice("--protocol-versions=".length).split(",").map(Number);
      if (versions.some((v) => !Number.isInteger(v) || v < 1)) {
        throw new Error(`${arg}: give positive integers separated by commas`);
      }
    } else throw new Error(`unknown argument ${arg}; usage: main.ts --listen=ENDPOINT`);
  }
  if (listen === undefined) {
    throw new Error(
      "missing --listen=ENDPOINT (vsock:PORT, unix:/PATH, stdio)",
    );
  }
  return {
    listen,
    ...(versions === undefined ? {} : { versions }),
    ...(exitOnStdinEof ? { exitOnStdinEof } : {}),
  };
}

async function main(): Promise<void> {
  let args: AgentArgs;
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => {
      killAllGroups();
      Deno.exit(0);
    });
  }
  try {
    args = parseArgs(Deno.args);
    if (args.exitOnStdinEof) void exitAtStdinEnd();
    const endpoint = parseEndpoint(args.listen);
    await serveEndpoint(
      endpoint,
      (conn) => serveSession(conn, { log: stderrLogger, versions: args.versions }),
      () => stderrLogger("ready"),
    );
  } catch (error) {
    stderrLogger((error as Error).message);
    Deno.exit(2);
  }
}

/** Waits for stdin to end (the parent that holds its other end exited), then stops. */
async function exitAtStdinEnd(): Promise<void> {
  const buffer = new Uint8Array(256);
  while ((await Deno.stdin.read(buffer).catch(() => null)) !== null) {
    // Nothing is expected on stdin; it only tells that the parent is alive.
  }
  killAllGroups();
  Deno.exit(0);
}

if (import.meta.main) await main();
