/**
 * The narrowest Deno permissions the docker driver needs for a configuration, each with its
 * reason. Only what the chosen engine address, the Docker CLI config and SSH need is listed.
 *
 * @module
 */

import type { PermissionNeed } from "../contract.ts";
import { dockerConfigPath } from "./registry_auth.ts";
import {
  type EngineAddress,
  type EngineEnv,
  readEngineEnv,
  resolveEngineAddress,
} from "./engine_address.ts";

/** The environment the permission computation looks at. */
export interface PermissionEnv extends EngineEnv {
  /** `HOME`. */
  readonly HOME?: string;
  /** `DOCKER_CONFIG`. */
  readonly DOCKER_CONFIG?: string;
  /** `SSH_AUTH_SOCK`. */
  readonly SSH_AUTH_SOCK?: string;
  /** Credential helper programs named by the Docker CLI config (`docker-credential-*`). */
  readonly credentialHelpers?: readonly string[];
}

function safeEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** Reads the environment and the Docker CLI config's credential helpers (synchronously; no I/O beyond one small file). */
export function currentPermissionEnv(): PermissionEnv {
  const env = {
    ...readEngineEnv(),
    HOME: safeEnv("HOME"),
    DOCKER_CONFIG: safeEnv("DOCKER_CONFIG"),
    SSH_AUTH_SOCK: safeEnv("SSH_AUTH_SOCK"),
  };
  let helpers: string[] = [];
  const path = dockerConfigPath(env);
  if (path) {
    try {
      const config = JSON.parse(Deno.readTextFileSync(path)) as {
        credHelpers?: Record<string, string>;
        credsStore?: string;
      };
      const names = new Set(Object.values(config.credHelpers ?? {}));
      if (config.credsStore) names.add(config.credsStore);
      helpers = [...names].map((n) => `docker-credential-${n}`);
    } catch {
      helpers = [];
    }
  }
  return { ...env, credentialHelpers: helpers };
}

/**
 * The private address ranges engines give their networks (Docker's default pools are in
 * 172.16.0.0/12 and 192.168.0.0/16): a service's readiness probe connects to the container's
 * address from the runner when the engine is not reached over SSH.
 */
export const CONTAINER_NETWORKS: readonly string[] = [
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
];

/** Computes the permissions for the engine the configuration resolves to. */
export function dockerPermissions(
  config: Readonly<Record<string, unknown>>,
  env: PermissionEnv,
): PermissionNeed[] {
  const host = typeof config.host === "string" && config.host !== "" ? config.host : undefined;
  const address: EngineAddress = resolveEngineAddress(host, env);
  const needs: PermissionNeed[] = [{
    permission: "env",
    values: true,
    reason:
      "dockerode's `debug` dependency enumerates every environment variable when it loads; the driver itself reads DOCKER_HOST, HOME and SSH_AUTH_SOCK",
  }];
  const read: string[] = [];
  const write: string[] = [];
  const net: string[] = [];
  if (address.kind === "unix") {
    read.push(address.path);
    write.push(address.path);
    net.push(`unix:${address.path}`, ...CONTAINER_NETWORKS);
  } else if (address.kind === "tcp") {
    net.push(`${address.host}:${address.port}`, ...CONTAINER_NETWORKS);
    if (address.tls) read.push(address.certPath ?? `${env.HOME ?? "~"}/.docker`);
  } else {
    net.push(`${address.target.host}:${address.target.port}`);
    if (env.HOME) read.push(`${env.HOME}/.ssh`);
    if (env.SSH_AUTH_SOCK) {
      read.push(env.SSH_AUTH_SOCK);
      write.push(env.SSH_AUTH_SOCK);
      net.push(`unix:${env.SSH_AUTH_SOCK}`);
    }
  }
  const configPath = dockerConfigPath(env);
  const reasons: Record<string, string> = {
    unix: `the Docker engine socket ${address.kind === "unix" ? address.path : ""}`,
    ssh: `private keys and known_hosts in ~/.ssh${
      env.SSH_AUTH_SOCK ? ", and the ssh-agent socket" : ""
    }`,
  };
  if (configPath) read.push(configPath);
  needs.push({
    permission: "read",
    values: read,
    reason: [
      address.kind === "unix" ? `connecting to ${reasons.unix}` : undefined,
      address.kind === "ssh" ? reasons.ssh : undefined,
      address.kind === "tcp" && address.tls
        ? "TLS certificates (ca.pem, cert.pem, key.pem)"
        : undefined,
      configPath ? `registry credentials in ${configPath}` : undefined,
    ].filter(Boolean).join("; "),
  });
  if (write.length > 0) {
    needs.push({
      permission: "write",
      values: write,
      reason: address.kind === "unix"
        ? `Deno requires write access to connect to ${reasons.unix}`
        : "Deno requires write access to connect to the ssh-agent socket",
    });
  }
  needs.push({
    permission: "net",
    values: net,
    reason: address.kind === "unix"
      ? "the Engine API over the Unix socket, and readiness checks of services at their container addresses (private ranges)"
      : address.kind === "tcp"
      ? "the Engine API over TCP, and readiness checks of services at their container addresses (private ranges)"
      : `SSH to ${address.target.host}:${address.target.port}, which carries the Engine API${
        env.SSH_AUTH_SOCK ? ", and the ssh-agent socket" : ""
      }`,
  });
  if (env.credentialHelpers && env.credentialHelpers.length > 0) {
    needs.push({
      permission: "run",
      values: [...env.credentialHelpers],
      reason: "registry credential helpers named in the Docker CLI config",
    });
  }
  return needs;
}
