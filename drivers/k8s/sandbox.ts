/**
 * Sandboxes: a long-lived pod plus `pods/exec`. The exec API has no working directory or
 * environment of its own, so each call runs `sh -c 'cd -- "$1" && shift && exec env "$@"'` with
 * the directory, a marker variable and the call's variables as arguments (never interpolated
 * into the script). An aborted call is killed through its marker: SIGTERM to every process
 * carrying it, SIGKILL after the grace period.
 *
 * @module
 */

import { posix } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import {
  DriverError,
  type ExecSpec,
  type ExitStatus,
  type OutputSink,
  type SandboxHandle,
} from "../contract.ts";
import { DEFAULT_WORKDIR } from "../docker/container_spec.ts";
import { execInPod } from "./exec.ts";

/** The variable that marks an exec's processes so an abort can find them (as on docker). */
export const EXEC_MARKER = "POCKETCI_EXEC_ID";

let counter = 0;

function killScript(marker: string, signal: "TERM" | "KILL"): string[] {
  const script = `for p in /proc/[0-9]*; do ` +
    `if tr '\\0' '\\n' < "$p/environ" 2>/dev/null | grep -qx '${EXEC_MARKER}=${marker}'; then ` +
    `kill -${signal} "\${p#/proc/}" 2>/dev/null; fi; done; true`;
  return ["sh", "-c", script];
}

/** The exec argv that runs `spec` in `dir` with its env and marker. */
export function wrappedCommand(spec: ExecSpec, marker: string): string[] {
  const dir = spec.workDir === undefined ? "." : posix.resolve(DEFAULT_WORKDIR, spec.workDir);
  return [
    "sh",
    "-c",
    'cd -- "$1" || exit 126; shift; exec env "$@"',
    "sh",
    dir,
    `${EXEC_MARKER}=${marker}`,
    ...Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
    ...spec.command,
  ];
}

/** A started sandbox pod. */
export class K8sSandbox implements SandboxHandle {
  /** The sandbox's run-scoped ID. */
  readonly id: string;
  /** The pod. */
  readonly pod: string;
  readonly #kc: KubeConfig;
  readonly #namespace: string;
  readonly #user: string | undefined;
  readonly #onClose: () => Promise<void>;
  #closing?: Promise<void>;

  /** Wraps a started pod; `onClose` deletes it. */
  constructor(
    id: string,
    pod: string,
    kc: KubeConfig,
    namespace: string,
    user: string | undefined,
    onClose: () => Promise<void>,
  ) {
    this.id = id;
    this.pod = pod;
    this.#kc = kc;
    this.#namespace = namespace;
    this.#user = user;
    this.#onClose = onClose;
  }

  /** Runs one command; resolves with its exit status. */
  async exec(
    spec: ExecSpec,
    output: OutputSink,
    options: { readonly signal?: AbortSignal; readonly graceMs?: number } = {},
  ): Promise<ExitStatus> {
    if (this.#closing) throw new DriverError("failed", `sandbox ${this.id} is closed`);
    if (spec.command.length === 0) throw new DriverError("invalid", "exec needs a command");
    if (spec.user !== undefined && spec.user !== this.#user) {
      throw new DriverError(
        "invalid",
        `the k8s driver cannot run one exec as another user (${spec.user}): pods/exec has no user; set .user() on the sandbox instead`,
      );
    }
    const marker = `${this.id}-${++counter}`;
    let stderrTail = "";
    const onAbort = () => {
      const kill = (signal: "TERM" | "KILL") =>
        execInPod(this.#kc, this.#namespace, this.pod, killScript(marker, signal)).catch(() => 0);
      void kill("TERM").then(() =>
        setTimeout(() => void kill("KILL"), Math.max(0, options.graceMs ?? 10_000))
      );
    };
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const code = await execInPod(
        this.#kc,
        this.#namespace,
        this.pod,
        wrappedCommand(spec, marker),
        {
          stdin: spec.stdin,
          output: (stream, chunk) => {
            if (stream === "stderr") {
              stderrTail = (stderrTail + new TextDecoder().decode(chunk)).slice(-500);
            }
            output(stream, chunk);
          },
        },
      );
      if (code === 127 && /env: .*(can't execute|No such file)/.test(stderrTail)) {
        throw new DriverError(
          "command_not_found",
          `command not found in sandbox ${this.id}: ${spec.command[0]}`,
        );
      }
      if (code === 126 && /can't cd|No such file/.test(stderrTail)) {
        throw new DriverError("invalid", `working directory does not exist in sandbox ${this.id}`);
      }
      return code > 128 && code < 160 ? { code, signal: code - 128 } : { code };
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Deletes the pod. Safe to call more than once. */
  close(): Promise<void> {
    this.#closing ??= this.#onClose();
    return this.#closing;
  }
}
