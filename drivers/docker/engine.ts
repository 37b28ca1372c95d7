/**
 * Opening a dockerode client for an {@link EngineAddress}: a Unix socket, TCP (optionally TLS),
 * or SSH through the shared connection pool (one SSH connection per host, one channel per
 * request). Connection failures become one-line {@link DriverError}s that say what was tried and
 * how to fix it.
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import Docker from "dockerode";
import type { Duplex } from "node:stream";
import { DriverError } from "../contract.ts";
import { acquireSshConnection, type SshConnectOptions, type SshLease } from "../ssh/connection.ts";
import { sshSocketAgent } from "../ssh/http_agent.ts";
import { describeAddress, type EngineAddress } from "./engine_address.ts";

/** A client bound to one engine; `close()` releases the SSH connection, if any. */
export interface Engine {
  /** The dockerode client. */
  readonly docker: Docker;
  /** Where it points. */
  readonly address: EngineAddress;
  /** Releases what the client holds. */
  close(): Promise<void>;
  /**
   * Opens a TCP connection to `host:port` as the engine's host sees it (a container's address on
   * a run network): through the SSH connection for an engine over SSH, absent otherwise (the
   * runner's host connects itself).
   */
  readonly dialFromEngineHost?: (host: string, port: number) => Promise<Duplex>;
}

/** Extra SSH settings (the cloud drivers pass their generated key and the host key they expect). */
export type EngineSshOptions = Omit<SshConnectOptions, "user" | "host" | "port">;

async function readOptional(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch {
    return undefined;
  }
}

/** Creates a client and checks that the engine answers (`GET /_ping`). */
export async function openEngine(
  address: EngineAddress,
  ssh: EngineSshOptions = {},
): Promise<Engine> {
  let lease: SshLease | undefined;
  let docker: Docker;
  if (address.kind === "unix") {
    docker = new Docker({ socketPath: address.path });
  } else if (address.kind === "tcp") {
    if (address.tls) {
      const dir = address.certPath ?? `${Deno.env.get("HOME") ?? ""}/.docker`;
      const [ca, cert, key] = await Promise.all(
        ["ca.pem", "cert.pem", "key.pem"].map((f) => readOptional(`${dir}/${f}`)),
      );
      docker = new Docker({
        protocol: "https",
        host: address.host,
        port: address.port,
        ca: ca && new TextDecoder().decode(ca),
        cert: cert && new TextDecoder().decode(cert),
        key: key && new TextDecoder().decode(key),
      });
    } else {
      docker = new Docker({ protocol: "http", host: address.host, port: address.port });
    }
  } else {
    lease = await acquireSshConnection({ ...ssh, ...address.target });
    // The host name is a placeholder: every connection is a channel to the remote socket.
    docker = new Docker({
      protocol: "http",
      host: "docker",
      port: 80,
      agent: sshSocketAgent(lease.connection, address.socketPath),
    } as Docker.DockerOptions);
  }
  const engine: Engine = {
    docker,
    address,
    close: async () => {
      await lease?.release();
    },
    ...(lease === undefined ? {} : {
      dialFromEngineHost: (host: string, port: number) => lease.connection.openTcp(host, port),
    }),
  };
  try {
    await docker.ping();
  } catch (error) {
    await engine.close();
    throw engineError(address, error);
  }
  return engine;
}

/** Turns a failure to reach the engine into a one-line {@link DriverError}. */
export function engineError(address: EngineAddress, error: unknown): DriverError {
  if (error instanceof DriverError) return error;
  const e = error as { code?: string; name?: string; message?: string; statusCode?: number };
  const where = `${describeAddress(address)} (${address.source})`;
  const hint = "point the DSN's host parameter or DOCKER_HOST at a running engine";
  if (
    e.name === "NotCapable" || e.name === "PermissionDenied" && /Requires/.test(e.message ?? "")
  ) {
    return new DriverError(
      "unavailable",
      `Deno denied access to the Docker engine at ${where}: ${e.message}; grant what \`pocketci permissions --driver=docker\` prints`,
      { cause: error },
    );
  }
  if (address.kind === "unix") {
    switch (e.code) {
      case "ENOENT":
        return new DriverError(
          "unavailable",
          `cannot reach the Docker engine: socket ${address.path} (${address.source}) does not exist; start dockerd (systemctl start docker) or ${hint}`,
          { cause: error },
        );
      case "EACCES":
      case "EPERM":
        return new DriverError(
          "unavailable",
          `cannot reach the Docker engine: permission denied on ${address.path}; add your user to the docker group (usermod -aG docker $USER, then log in again) or run as root`,
          { cause: error },
        );
      case "ECONNREFUSED":
        return new DriverError(
          "unavailable",
          `cannot reach the Docker engine: nothing listens on ${address.path} (${address.source}); dockerd is not running, start it or ${hint}`,
          { cause: error },
        );
    }
  }
  if (address.kind === "tcp") {
    if (
      e.code === "ECONNREFUSED" || e.code === "ENOTFOUND" || e.code === "EAI_AGAIN" ||
      e.code === "ETIMEDOUT" || e.code === "EHOSTUNREACH"
    ) {
      return new DriverError(
        "unavailable",
        `cannot reach the Docker engine at ${where}: ${e.code}; check that dockerd listens there (dockerd -H tcp://...) or ${hint}`,
        { cause: error },
      );
    }
  }
  if (address.kind === "ssh" && /channel|streamlocal|open failed/i.test(e.message ?? "")) {
    return new DriverError(
      "unavailable",
      `cannot reach the Docker engine at ${where} through ssh: ${e.message}; check that dockerd runs on the host and ${address.target.user} may use ${address.socketPath}`,
      { cause: error },
    );
  }
  const detail = (e.message ?? String(error)).split("\n")[0];
  return new DriverError(
    "unavailable",
    `cannot reach the Docker engine at ${where}: ${detail}; ${hint}`,
    { cause: error },
  );
}
