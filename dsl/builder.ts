/**
 * The immutable builder methods tasks and sandboxes share. Every method returns a
 * new builder, so a partial builder is a reusable template.
 *
 * @module
 */

import {
  type BuilderConfig,
  checkMountPath,
  encodeStdin,
  mergeEnv,
  parseLimits,
  parseTimeout,
  withChanges,
} from "./config.ts";
import { checkRetry, type RetryOptions } from "./retry.ts";
import type { EnvValue, Limits, OutputCallback, PullPolicy } from "./types.ts";
import {
  checkEntrypoint,
  checkFlag,
  checkImage,
  checkPlatform,
  checkPull,
  checkUser,
  checkWorkDir,
} from "./validate.ts";
import { Volume } from "./volume.ts";

/** Methods shared by `task(name)` and `sandbox(name)`. */
export abstract class Builder {
  /** The settings collected so far. */
  protected readonly config: BuilderConfig;

  /** Wraps a configuration. */
  protected constructor(config: BuilderConfig) {
    this.config = config;
  }

  /** A builder of the same kind with `config`. */
  protected abstract derive(config: BuilderConfig): this;

  /** A builder of the same kind with `changes` applied. */
  #with(changes: Partial<BuilderConfig>): this {
    return this.derive(withChanges(this.config, changes));
  }

  /**
   * Renames the task or sandbox (a template's copies get their own names in the output
   * and the summary instead of `base#2`, `base#3`).
   */
  name(name: string): this {
    if (typeof name !== "string" || name.trim() === "") {
      throw new Error('name() needs a non-empty name, such as name("lint")');
    }
    return this.#with({ name });
  }

  /** Sets the container image (ignored, with a warning, by drivers that run on the host). */
  image(image: string): this {
    return this.#with({ image: checkImage(image) });
  }

  /** Adds environment variables; values may be `secret("NAME")`. */
  env(vars: Readonly<Record<string, EnvValue>>): this {
    return this.#with({ env: mergeEnv(this.config.env, vars) });
  }

  /**
   * Sets the working directory. The default is a fresh per-task directory (`/workspace` in
   * containers); a relative path is relative to that default (not to another `workDir`) and
   * is created when missing, so `.mount(src, "src").workDir("src")` works inside the volume.
   * An absolute path is used as is.
   */
  workDir(path: string): this {
    return this.#with({ workDir: checkWorkDir(path) });
  }

  /**
   * Mounts a volume or cache at `path`: relative to the default working directory (never
   * to `workDir`), or absolute.
   */
  mount(volume: Volume, path: string): this {
    if (!(volume instanceof Volume)) {
      throw new Error("mount() needs a volume from volume() or cache()");
    }
    const mounts = [...this.config.mounts, { volume, path: checkMountPath(path) }];
    return this.#with({ mounts: Object.freeze(mounts) });
  }

  /** Feeds standard input (then closes it). */
  stdin(input: string | Uint8Array): this {
    return this.#with({ stdin: encodeStdin(input) });
  }

  /** Runs as another user. */
  user(user: string): this {
    return this.#with({ user: checkUser(user) });
  }

  /** Runs privileged (or not). */
  privileged(enabled = true): this {
    return this.#with({ privileged: checkFlag("privileged", enabled) });
  }

  /** Sets CPU (cores) and memory (bytes or a quantity such as `"512Mi"`) limits. */
  limits(limits: Limits): this {
    const parsed = parseLimits(limits);
    return this.#with({
      cpu: parsed.cpu ?? this.config.cpu,
      memoryBytes: parsed.memoryBytes ?? this.config.memoryBytes,
    });
  }

  /** Stops the task after this long from its start (`"2s"`, `"1m30s"`, or milliseconds). */
  timeout(duration: number | string): this {
    return this.#with({ timeoutMs: parseTimeout(duration) });
  }

  /**
   * Re-runs the task up to `n` more times (0 to 10) while an attempt ends in one of
   * `options.when` (default: failure, timeout and error; never a cancellation), waiting
   * `delay` before the second attempt and `backoff` times longer before each later one.
   * Every attempt gets the whole `.timeout()`, is masked, logged and stopped by Ctrl-C;
   * the result's `attempts` says how many ran. On a sandbox builder it is the default of
   * the sandbox's calls (starting the sandbox is not retried).
   */
  retry(n: number, options: RetryOptions = {}): this {
    return this.#with({ retry: checkRetry(n, options) });
  }

  /** Receives output chunks as they arrive (secrets masked). */
  onOutput(callback: OutputCallback): this {
    if (typeof callback !== "function") throw new Error("onOutput() needs a function");
    return this.#with({ onOutput: callback });
  }

  /** Resolves instead of rejecting on a non-zero exit or a timeout. */
  allowFailure(allow = true): this {
    return this.#with({ allowFailure: checkFlag("allowFailure", allow) });
  }

  /**
   * Lets the task (or, on a sandbox builder, each call) outlive the pipeline function: one
   * still running when the function returns is cancelled without failing the run. Without
   * it, a task the pipeline did not `await` fails the run.
   */
  background(enabled = true): this {
    return this.#with({ background: checkFlag("background", enabled) });
  }

  /** Sets the image pull policy (container drivers). */
  pull(policy: PullPolicy): this {
    return this.#with({ pull: checkPull(policy) });
  }

  /** Sets the image platform, such as `linux/amd64` (container drivers). */
  platform(platform: string): this {
    return this.#with({ platform: checkPlatform(platform) });
  }

  /** Sets an explicit entrypoint (container drivers clear the image's entrypoint otherwise). */
  entrypoint(...entrypoint: string[]): this {
    return this.#with({ entrypoint: Object.freeze(checkEntrypoint(entrypoint)) });
  }
}
