/**
 * Creating a docker driver from code, with SSH settings the DSN cannot carry. The DigitalOcean and
 * Hetzner drivers use this to run on a machine they created: they pass its address, the key they
 * generated and the host key they expect.
 *
 * @module
 */

import type { DriverContext } from "../contract.ts";
import { DockerDriver } from "./driver.ts";
import { type EngineSshOptions, openEngine } from "./engine.ts";
import { parseEngineHost, readEngineEnv, resolveEngineAddress } from "./engine_address.ts";

/** Where the engine is and how to reach it. */
export interface DockerDriverOptions {
  /** `unix://...`, `tcp://...` or `ssh://user@host[:port]`; default `DOCKER_HOST`, then the local socket. */
  readonly host?: string;
  /** Where `host` came from, for error messages (default "the given host"). */
  readonly hostSource?: string;
  /** The Docker CLI config with registry credentials (default `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`). */
  readonly dockerConfigPath?: string;
  /** SSH settings for an `ssh://` host (keys, known_hosts, a host-key check of the caller's own). */
  readonly ssh?: EngineSshOptions;
}

/** Connects to the engine (one-line error when it cannot) and returns a driver bound to the run. */
export async function createDockerDriver(
  context: DriverContext,
  options: DockerDriverOptions = {},
): Promise<DockerDriver> {
  const env = readEngineEnv();
  const address = options.host
    ? parseEngineHost(options.host, options.hostSource ?? "the given host", env)
    : resolveEngineAddress(undefined, env);
  const engine = await openEngine(address, options.ssh);
  return new DockerDriver(engine, context, { dockerConfigPath: options.dockerConfigPath });
}
