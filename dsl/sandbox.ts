/**
 * `sandbox(name)`: a long-lived environment whose state persists between calls.
 *
 * @module
 */

import { Builder } from "./builder.ts";
import {
  type BuilderConfig,
  checkCommand,
  encodeStdin,
  groupField,
  initialConfig,
  mergeEnv,
  parseTimeout,
  shellCommand,
  toRequest,
} from "./config.ts";
import { settle } from "./errors.ts";
import { currentHost, type ExecRequest } from "./host.ts";
import { checkRetry, type RetryOptions, type RetryPolicy } from "./retry.ts";
import type { EnvValue, OutputCallback, TaskResult } from "./types.ts";
import { checkFlag, checkUser, checkWorkDir } from "./validate.ts";

interface CallConfig {
  readonly env: Readonly<Record<string, EnvValue>>;
  readonly workDir?: string;
  readonly stdin?: Uint8Array;
  readonly user?: string;
  readonly timeoutMs?: number;
  readonly allowFailure: boolean;
  readonly background?: boolean;
  readonly onOutput?: OutputCallback;
  readonly retry?: RetryPolicy;
}

/**
 * Builds one call in a started sandbox. Settings apply to that call only; a call
 * builder does not own the sandbox (closing is the sandbox's job).
 */
export class SandboxCall {
  /** The sandbox's runner ID. */
  readonly id: string;
  /** The sandbox's name. */
  readonly name: string;
  readonly #call: CallConfig;

  /** Wraps a started sandbox; use `sandbox(name)...start()` instead. */
  constructor(id: string, name: string, call: CallConfig) {
    this.id = id;
    this.name = name;
    this.#call = Object.freeze(call);
  }

  #with(changes: Partial<CallConfig>): SandboxCall {
    return new SandboxCall(this.id, this.name, { ...this.#call, ...changes });
  }

  /** Adds environment variables for this call. */
  env(vars: Readonly<Record<string, EnvValue>>): SandboxCall {
    return this.#with({ env: mergeEnv(this.#call.env, vars) });
  }

  /**
   * Sets the working directory for this call: relative to the sandbox's default working
   * directory (not to the sandbox's own `workDir`), or absolute; it must exist.
   */
  workDir(path: string): SandboxCall {
    return this.#with({ workDir: checkWorkDir(path) });
  }

  /** Feeds standard input to this call. */
  stdin(input: string | Uint8Array): SandboxCall {
    return this.#with({ stdin: encodeStdin(input) });
  }

  /** Runs this call as another user. */
  user(user: string): SandboxCall {
    return this.#with({ user: checkUser(user) });
  }

  /** Stops this call after this long from its start. */
  timeout(duration: number | string): SandboxCall {
    return this.#with({ timeoutMs: parseTimeout(duration) });
  }

  /** Resolves instead of rejecting on a non-zero exit or a timeout. */
  allowFailure(allow = true): SandboxCall {
    return this.#with({ allowFailure: checkFlag("allowFailure", allow) });
  }

  /** Lets this call outlive the pipeline function (cancelled then, without failing the run). */
  background(enabled = true): SandboxCall {
    return this.#with({ background: checkFlag("background", enabled) });
  }

  /**
   * Re-runs this call up to `n` more times while an attempt ends in one of `options.when`
   * (see the task builder's `retry`). A call that changed the sandbox's state before
   * failing runs again on that state.
   */
  retry(n: number, options: RetryOptions = {}): SandboxCall {
    return this.#with({ retry: checkRetry(n, options) });
  }

  /** Receives this call's output chunks as they arrive. */
  onOutput(callback: OutputCallback): SandboxCall {
    if (typeof callback !== "function") throw new Error("onOutput() needs a function");
    return this.#with({ onOutput: callback });
  }

  /** Runs `command` with `args` in the sandbox. Rejects with `TaskError` unless it succeeds. */
  async run(command: string, ...args: string[]): Promise<TaskResult> {
    return await this.#exec(checkCommand(command, args));
  }

  /**
   * Runs `sh -c script` in the sandbox with `set -eu` (and `set -o pipefail` where the shell
   * has it) first; opt out with `set +e` in the script or `run("sh", "-c", script)`.
   */
  async sh(script: string): Promise<TaskResult> {
    return await this.#exec(shellCommand(script));
  }

  async #exec(command: string[]): Promise<TaskResult> {
    const call = this.#call;
    const request: ExecRequest = {
      command,
      env: { ...call.env },
      workDir: call.workDir,
      stdin: call.stdin,
      user: call.user,
      timeoutMs: call.timeoutMs,
      allowFailure: call.allowFailure,
      ...(call.background ? { background: true } : {}),
      ...(call.retry === undefined ? {} : { retry: call.retry }),
      ...groupField(),
    };
    const result = await currentHost().execSandbox(this.id, request, call.onOutput);
    return settle(result, call.allowFailure);
  }
}

/** A started sandbox: a call builder that also owns the sandbox's lifetime. */
export class Sandbox extends SandboxCall {
  /** Ends the sandbox and removes it. Safe to call more than once. */
  close(): Promise<void> {
    return currentHost().closeSandbox(this.id);
  }

  /** Closes the sandbox at the end of an `await using` block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** An immutable sandbox builder: the task methods, then `start()`. */
export class SandboxBuilder extends Builder {
  /** Creates a builder from a configuration; use {@link sandbox} instead. */
  constructor(config: BuilderConfig) {
    super(config);
    Object.freeze(this);
  }

  /** A sandbox builder with `config`. */
  protected derive(config: BuilderConfig): this {
    return new SandboxBuilder(config) as this;
  }

  /**
   * Starts the sandbox. Timeout, `allowFailure` and `onOutput` set here become the
   * defaults of its calls.
   */
  async start(): Promise<Sandbox> {
    const config = this.config;
    const info = await currentHost().startSandbox(toRequest({ ...config, retry: undefined }, []));
    return new Sandbox(info.id, info.name, {
      env: {},
      timeoutMs: config.timeoutMs,
      allowFailure: config.allowFailure,
      background: config.background,
      onOutput: config.onOutput,
      retry: config.retry,
    });
  }
}

/** Starts building a sandbox named `name`. */
export function sandbox(name: string): SandboxBuilder {
  return new SandboxBuilder(initialConfig("sandbox", name));
}
