/**
 * Runs the guest agent as a local Deno subprocess listening on a unix socket: the agent's
 * tests and the agent driver's conformance run use it in place of a guest.
 *
 * @module
 */

import { AgentClient, type ConnectOptions } from "./client.ts";
import { connectUnix } from "./connect.ts";

const AGENT_MAIN = new URL("../../agent/main.ts", import.meta.url).pathname;

/** A running local agent. */
export interface LocalAgent {
  /** The socket it listens on. */
  readonly socket: string;
  /** Its pid. */
  readonly pid: number;
  /** Connects a client to it. */
  connect(options?: ConnectOptions): Promise<AgentClient>;
  /** The agent process's peak resident set in bytes (Linux VmHWM). */
  peakRss(): Promise<number>;
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** Kills it (and waits); removes the socket's directory. */
  stop(): Promise<void>;
}

/** Starts an agent on a fresh socket and waits until it says it is ready. */
export async function startLocalAgent(extraArgs: readonly string[] = []): Promise<LocalAgent> {
  const dir = await Deno.makeTempDir({ prefix: "pocketci-agent-" });
  const socket = `${dir}/agent.sock`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-check",
      AGENT_MAIN,
      `--listen=unix:${socket}`,
      // Dies with this process even when it is killed before stop(): its stdin ends then.
      "--exit-on-stdin-eof",
      ...extraArgs,
    ],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  let readyResolve: () => void = () => {};
  const ready = new Promise<void>((resolve) => readyResolve = resolve);
  const reading = (async () => {
    for await (const chunk of child.stderr) {
      text += decoder.decode(chunk, { stream: true });
      if (text.includes("pocketci-agent: ready")) readyResolve();
    }
  })();
  const status = child.status;
  const exitedEarly = status.then((s) => {
    throw new Error(`the agent exited with ${s.code} before it was ready: ${text.trim()}`);
  });
  await Promise.race([ready, exitedEarly]);
  exitedEarly.catch(() => {});
  let stopped = false;
  return {
    socket,
    pid: child.pid,
    connect: async (options) => AgentClient.connect(await connectUnix(socket), options),
    peakRss: async () => {
      const statusText = await Deno.readTextFile(`/proc/${child.pid}/status`);
      const match = /VmHWM:\s+(\d+) kB/.exec(statusText);
      return match ? Number(match[1]) * 1024 : NaN;
    },
    stderr: () => text,
    stop: async () => {
      if (!stopped) {
        stopped = true;
        await child.stdin.close().catch(() => {});
        try {
          child.kill("SIGTERM"); // The agent kills its commands' groups, then exits.
        } catch {
          // Already gone.
        }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // Exited meanwhile.
          }
        }, 3000);
        await status;
        clearTimeout(timer);
      }
      await status;
      await reading.catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
