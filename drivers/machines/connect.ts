/**
 * Reaching a machine: SSH with the namespace's client key and strict host-key verification
 * against the key this driver generated for the machine (no trust on first use: any other key
 * is refused), retried until `ssh_timeout`; then the Docker engine over that connection, retried
 * until `docker_timeout`. The docker driver it returns runs every container operation.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { DriverContext } from "../contract.ts";
import { createDockerDriver } from "../docker/create.ts";
import type { DockerDriver } from "../docker/driver.ts";
import type { EngineSshOptions } from "../docker/engine.ts";
import { acquireSshConnection, type SshLease } from "../ssh/connection.ts";
import type { HostKeyVerdict } from "../ssh/known_hosts.ts";
import { sleep } from "../timers.ts";
import { publicKeyBlob } from "./keys.ts";

/** Where and how to connect. */
export interface MachineAddress {
  /** IPv4 address. */
  readonly ip: string;
  /** SSH port (22). */
  readonly port: number;
  /** The namespace's private key. */
  readonly clientKey: string;
  /** The host public key the machine was given. */
  readonly hostKey: string;
}

/** Why a wait ended without success. */
export class StageTimeout extends Error {
  /** The last failure seen. */
  readonly lastError: string;
  /** Creates the error. */
  constructor(lastError: string) {
    super(lastError);
    this.lastError = lastError;
  }
}

/** SSH options that trust only the machine's own host key. */
export function sshOptions(address: MachineAddress, readyTimeoutMs = 10_000): EngineSshOptions {
  const expected = Buffer.from(publicKeyBlob(address.hostKey));
  return {
    agentSocket: false,
    identityFiles: [],
    knownHostsFiles: [],
    privateKeys: [address.clientKey],
    readyTimeoutMs,
    verifyHostKey: (blob: Uint8Array): HostKeyVerdict =>
      expected.equals(Buffer.from(blob))
        ? { status: "trusted", source: "the host key PocketCI generated for this machine" }
        : { status: "changed", source: "the host key PocketCI generated for this machine" },
  };
}

function oneLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}

/** Retries `attempt` until it succeeds, `deadline` passes (StageTimeout) or `signal` aborts. */
async function until<T>(
  deadline: number,
  signal: AbortSignal | undefined,
  retryMs: number,
  attempt: (remainingMs: number) => Promise<T>,
): Promise<T> {
  let last = "no attempt was made";
  while (true) {
    signal?.throwIfAborted();
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new StageTimeout(last);
    try {
      return await attempt(remaining);
    } catch (error) {
      signal?.throwIfAborted();
      last = oneLine(error);
    }
    await sleep(Math.min(retryMs, Math.max(0, deadline - Date.now())), signal);
  }
}

/**
 * Waits until SSH answers with the expected host key and accepts the client key. The lease keeps
 * the connection open for the docker driver (which shares it); release it once that exists.
 */
export async function waitForSsh(
  address: MachineAddress,
  deadline: number,
  signal?: AbortSignal,
  retryMs = 1_000,
): Promise<SshLease> {
  return await until(deadline, signal, retryMs, (remaining) =>
    acquireSshConnection({
      ...sshOptions(address, Math.min(10_000, Math.max(1_000, remaining))),
      user: "root",
      host: address.ip,
      port: address.port,
    }));
}

/** Waits until the Docker engine answers over SSH and returns a docker driver bound to it. */
export async function waitForDocker(
  address: MachineAddress,
  context: DriverContext,
  deadline: number,
  signal?: AbortSignal,
  retryMs = 1_000,
): Promise<DockerDriver> {
  const host = `ssh://root@${address.ip}:${address.port}`;
  return await until(deadline, signal, retryMs, (remaining) =>
    createDockerDriver(context, {
      host,
      hostSource: "the machine's address",
      ssh: sshOptions(address, Math.min(10_000, Math.max(1_000, remaining))),
    }));
}
