/**
 * Which Docker engine to talk to: the DSN's `host`, else `DOCKER_HOST`, else the local socket.
 * Accepts `unix:///path` (or a bare absolute path), `tcp://host:port` (TLS when
 * `DOCKER_TLS_VERIFY=1` or port 2376, certificates from `DOCKER_CERT_PATH`) and
 * `ssh://user@host[:port]`.
 *
 * @module
 */

import { DriverError } from "../contract.ts";
import { parseSshUrl, type SshTarget } from "../ssh/target.ts";

/** The default engine socket on Linux. */
export const DEFAULT_SOCKET = "/var/run/docker.sock";

/** A resolved engine address. */
export type EngineAddress =
  | { readonly kind: "unix"; readonly path: string; readonly source: string }
  | {
    readonly kind: "tcp";
    readonly host: string;
    readonly port: number;
    readonly tls: boolean;
    readonly certPath?: string;
    readonly source: string;
  }
  | {
    readonly kind: "ssh";
    readonly target: SshTarget;
    readonly socketPath: string;
    readonly source: string;
  };

/** The environment variables the address depends on. */
export interface EngineEnv {
  /** `DOCKER_HOST`. */
  readonly DOCKER_HOST?: string;
  /** `DOCKER_TLS_VERIFY`. */
  readonly DOCKER_TLS_VERIFY?: string;
  /** `DOCKER_CERT_PATH`. */
  readonly DOCKER_CERT_PATH?: string;
  /** `USER`, the default ssh login. */
  readonly USER?: string;
}

/** Reads the variables of {@link EngineEnv} that the caller may read (missing permission = unset). */
export function readEngineEnv(): EngineEnv {
  const get = (name: string): string | undefined => {
    try {
      return Deno.env.get(name) || undefined;
    } catch {
      return undefined;
    }
  };
  return {
    DOCKER_HOST: get("DOCKER_HOST"),
    DOCKER_TLS_VERIFY: get("DOCKER_TLS_VERIFY"),
    DOCKER_CERT_PATH: get("DOCKER_CERT_PATH"),
    USER: get("USER"),
  };
}

/** Resolves the engine address from the DSN's `host` (wins), `DOCKER_HOST`, or the default socket. */
export function resolveEngineAddress(
  host: string | undefined | null,
  env: EngineEnv,
): EngineAddress {
  if (host) return parseEngineHost(host, "the DSN's host parameter", env);
  if (env.DOCKER_HOST) return parseEngineHost(env.DOCKER_HOST, "DOCKER_HOST", env);
  return { kind: "unix", path: DEFAULT_SOCKET, source: "the default socket" };
}

/** Parses one engine host string; `source` names where it came from, for messages. */
export function parseEngineHost(value: string, source: string, env: EngineEnv = {}): EngineAddress {
  if (value.startsWith("/")) return { kind: "unix", path: value, source };
  const scheme = value.slice(0, value.indexOf("://"));
  if (scheme === "unix") {
    const path = value.slice("unix://".length);
    if (!path.startsWith("/")) {
      throw new DriverError(
        "invalid",
        `${source}: ${value} is not an absolute socket path; use unix:///path/to/docker.sock`,
      );
    }
    return { kind: "unix", path, source };
  }
  if (scheme === "tcp" || scheme === "http" || scheme === "https") {
    let url: URL;
    try {
      url = new URL(value.replace(/^tcp:/, "http:"));
    } catch {
      throw new DriverError(
        "invalid",
        `${source}: ${value} is not a valid address; use tcp://host:port`,
      );
    }
    const port = url.port ? Number(url.port) : scheme === "https" ? 2376 : 2375;
    const tls = scheme === "https" || env.DOCKER_TLS_VERIFY === "1" || port === 2376;
    return {
      kind: "tcp",
      host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port,
      tls,
      certPath: env.DOCKER_CERT_PATH,
      source,
    };
  }
  if (scheme === "ssh") {
    return {
      kind: "ssh",
      target: parseSshUrl(value, env.USER ?? "root"),
      socketPath: DEFAULT_SOCKET,
      source,
    };
  }
  throw new DriverError(
    "invalid",
    `${source}: unsupported Docker host ${
      JSON.stringify(value)
    }; use unix:///var/run/docker.sock, tcp://host:port or ssh://user@host[:port]`,
  );
}

/** How the address reads in messages. */
export function describeAddress(address: EngineAddress): string {
  switch (address.kind) {
    case "unix":
      return `unix://${address.path}`;
    case "tcp":
      return `${address.tls ? "https" : "tcp"}://${address.host}:${address.port}`;
    case "ssh":
      return `ssh://${address.target.user}@${address.target.host}:${address.target.port}`;
  }
}
