/**
 * Making sure a task's image is there: used when present, pulled when missing (or always, by
 * policy), never pulled under `never`. Concurrent requests for one image share one pull; progress
 * is shown on a terminal; a failed pull names the image and the registry's error.
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import type Docker from "dockerode";
import { DriverError, type PullPolicy } from "../contract.ts";
import { authForImage, dockerConfigPath, readDockerConfig } from "./registry_auth.ts";

/** `busybox` → `busybox:latest`; references with a tag or digest are kept. */
export function normalizeImage(image: string): string {
  if (image.includes("@")) return image;
  const lastSlash = image.lastIndexOf("/");
  return image.slice(lastSlash + 1).includes(":") ? image : `${image}:latest`;
}

/** The first line of what the engine said (its JSON `message` when it answered). */
function engineMessage(error: unknown): string {
  const e = error as { json?: { message?: string }; message?: string };
  return (e.json?.message ?? e.message ?? String(error)).split("\n")[0].trim();
}

interface PullEvent {
  status?: string;
  id?: string;
  error?: string;
  errorDetail?: { message?: string };
  progressDetail?: { current?: number; total?: number };
}

function envValue(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** Shows one line of pull progress on a terminal, rewritten in place. */
class PullProgress {
  readonly #image: string;
  readonly #layers = new Map<string, { current: number; total: number; done: boolean }>();
  #last = 0;
  readonly #enabled: boolean;
  readonly #encoder = new TextEncoder();

  constructor(image: string) {
    this.#image = image;
    let tty = false;
    try {
      tty = Deno.stderr.isTerminal();
    } catch {
      tty = false;
    }
    this.#enabled = tty;
  }

  update(event: PullEvent): void {
    if (!this.#enabled || !event.id) return;
    const layer = this.#layers.get(event.id) ?? { current: 0, total: 0, done: false };
    if (event.progressDetail?.total) {
      layer.current = event.progressDetail.current ?? 0;
      layer.total = event.progressDetail.total;
    }
    if (/complete|already exists/i.test(event.status ?? "")) layer.done = true;
    this.#layers.set(event.id, layer);
    const now = Date.now();
    if (now - this.#last < 100) return;
    this.#last = now;
    this.#write();
  }

  #write(): void {
    let current = 0;
    let total = 0;
    let done = 0;
    for (const l of this.#layers.values()) {
      current += l.current;
      total += l.total;
      if (l.done) done++;
    }
    const mb = (n: number) => (n / 1e6).toFixed(1);
    const line = `pulling ${this.#image}: ${done}/${this.#layers.size} layers, ${mb(current)}/${
      mb(total)
    } MB`;
    Deno.stderr.writeSync(this.#encoder.encode(`\r\x1b[2K${line}`));
  }

  finish(): void {
    if (this.#enabled && this.#layers.size > 0) {
      Deno.stderr.writeSync(this.#encoder.encode("\r\x1b[2K"));
    }
  }
}

/**
 * Ensures images per driver instance; remembers which ones are known to be present. Pulls in
 * flight are abandoned when the run's signal aborts: the request to the engine is closed, which
 * makes the engine cancel the pull.
 */
export class ImageManager {
  readonly #docker: Docker;
  readonly #present = new Map<string, Promise<void>>();
  readonly #pulls = new Map<string, Promise<void>>();
  readonly #configPath: string | undefined;
  readonly #signal: AbortSignal | undefined;

  /**
   * Creates a manager for one engine; `configPath` overrides the Docker CLI config's location;
   * `signal` (the run's) cancels pulls in flight.
   */
  constructor(docker: Docker, configPath?: string, signal?: AbortSignal) {
    this.#docker = docker;
    this.#configPath = configPath;
    this.#signal = signal;
  }

  /** Resolves once `image` is present according to `policy`. */
  ensure(image: string, policy: PullPolicy = "missing", platform?: string): Promise<void> {
    const ref = normalizeImage(image);
    if (policy === "always") return this.#pull(ref, platform);
    const key = `${ref}|${platform ?? ""}|${policy}`;
    let known = this.#present.get(key);
    if (!known) {
      known = this.#check(ref, policy, platform);
      this.#present.set(key, known);
      known.catch(() => this.#present.delete(key));
    }
    return known;
  }

  async #check(ref: string, policy: PullPolicy, platform?: string): Promise<void> {
    let info: Docker.ImageInspectInfo | undefined;
    try {
      info = await this.#docker.getImage(ref).inspect();
    } catch (error) {
      const { statusCode: status, code } = error as { statusCode?: number; code?: string };
      // The engine answered, or the client could not put the name in a request (ERR_...): either
      // way it is about the image, never about reaching the engine.
      if ((status !== undefined && status !== 404) || code?.startsWith("ERR_")) {
        throw new DriverError(
          "invalid",
          `image ${ref}: the engine refused it: ${engineMessage(error)}`,
          { cause: error },
        );
      }
      if (status !== 404) throw error;
    }
    if (info && platform) {
      const [os, arch] = platform.split("/");
      if ((os && info.Os !== os) || (arch && info.Architecture !== arch)) info = undefined;
    }
    if (info) return;
    if (policy === "never") {
      throw new DriverError(
        "image_not_found",
        `image ${ref}${
          platform ? ` (${platform})` : ""
        } is not present on the engine and the pull policy is "never"; pull or build it first, or use pull("missing")`,
      );
    }
    await this.#pull(ref, platform);
  }

  #pull(ref: string, platform?: string): Promise<void> {
    const key = `${ref}|${platform ?? ""}`;
    let pull = this.#pulls.get(key);
    if (!pull) {
      pull = this.#doPull(ref, platform).finally(() => this.#pulls.delete(key));
      this.#pulls.set(key, pull);
    }
    return pull;
  }

  async #doPull(ref: string, platform?: string): Promise<void> {
    let auth;
    try {
      const config = await readDockerConfig(
        this.#configPath ??
          dockerConfigPath({ DOCKER_CONFIG: envValue("DOCKER_CONFIG"), HOME: envValue("HOME") }),
      );
      auth = await authForImage(ref, config);
    } catch (error) {
      throw new DriverError(
        "failed",
        `cannot read registry credentials for ${ref}: ${(error as Error).message}`,
      );
    }
    const signal = this.#signal;
    const cancelled = () =>
      new DriverError(
        "failed",
        `the pull of image ${ref} was cancelled: ${String(signal?.reason ?? "the run stopped")}`,
      );
    if (signal?.aborted) throw cancelled();
    const progress = new PullProgress(ref);
    let stream: (NodeJS.ReadableStream & { destroy?: () => void }) | undefined;
    let onAbort = () => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        stream?.destroy?.();
        reject(cancelled());
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    aborted.catch(() => {});
    try {
      const options: Record<string, unknown> = {};
      if (auth) options.authconfig = auth;
      if (platform) options.platform = platform;
      if (signal) options.abortSignal = signal;
      stream = await Promise.race([this.#docker.pull(ref, options), aborted]);
      if (signal?.aborted) stream.destroy?.();
      const pulled = stream;
      await Promise.race([
        aborted,
        new Promise<void>((resolve, reject) => {
          this.#docker.modem.followProgress(
            pulled,
            (error: Error | null, events: PullEvent[]) => {
              const failed = events?.find((e) => e.error);
              if (error) reject(error);
              else if (failed) reject(new Error(failed.errorDetail?.message ?? failed.error));
              else resolve();
            },
            (event: PullEvent) => progress.update(event),
          );
        }),
      ]);
    } catch (error) {
      if (signal?.aborted) throw cancelled();
      const message =
        ((error as { json?: { message?: string } }).json?.message ?? (error as Error).message ??
          String(error))
          .split("\n")[0].trim();
      throw new DriverError(
        "image_not_found",
        `cannot pull image ${ref}${platform ? ` (${platform})` : ""}: ${message}`,
      );
    } finally {
      signal?.removeEventListener("abort", onAbort);
      progress.finish();
    }
  }
}
