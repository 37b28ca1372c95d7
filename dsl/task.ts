/**
 * `task(name)`: a one-shot command.
 *
 * @module
 */

import { Builder } from "./builder.ts";
import {
  type BuilderConfig,
  checkCommand,
  initialConfig,
  shellCommand,
  toRequest,
} from "./config.ts";
import { settle } from "./errors.ts";
import { currentHost } from "./host.ts";
import type { TaskResult } from "./types.ts";

/** An immutable task builder; `run` and `sh` start it. */
export class TaskBuilder extends Builder {
  /** Creates a builder from a configuration; use {@link task} instead. */
  constructor(config: BuilderConfig) {
    super(config);
    Object.freeze(this);
  }

  /** A task builder with `config`. */
  protected derive(config: BuilderConfig): this {
    return new TaskBuilder(config) as this;
  }

  /** Runs `command` with `args` directly (no shell). Rejects with `TaskError` unless it succeeds. */
  async run(command: string, ...args: string[]): Promise<TaskResult> {
    return await this.#start(checkCommand(command, args));
  }

  /**
   * Runs `sh -c script` with `set -eu` (and `set -o pipefail` where the shell has it) first,
   * so the script stops at its first failing command. Opt out with `set +e` at the top of the
   * script, or with `run("sh", "-c", script)`. Rejects with `TaskError` unless it succeeds.
   */
  async sh(script: string): Promise<TaskResult> {
    return await this.#start(shellCommand(script));
  }

  async #start(argv: string[]): Promise<TaskResult> {
    const result = await currentHost().runTask(toRequest(this.config, argv), this.config.onOutput);
    return settle(result, this.config.allowFailure);
  }
}

/** Starts building a task named `name`. */
export function task(name: string): TaskBuilder {
  return new TaskBuilder(initialConfig("task", name));
}
