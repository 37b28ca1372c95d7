/**
 * One SSH connection (ssh2) to a host, with host-key checking against known_hosts, and a pool that
 * shares one connection per `user@host:port` between every user in the process. Channels to a
 * remote Unix socket (OpenSSH streamlocal forwarding) carry the Docker Engine API.
 *
 * @module
 */

// @ts-types="npm:@types/ssh2@^1"
import { Client, type ClientChannel } from "ssh2";
import type { Duplex } from "node:stream";
import { concatBytes } from "../bytes.ts";
import { DriverError } from "../contract.ts";
import { planAuth } from "./auth.ts";
import {
  checkHostKey,
  fingerprint,
  type HostKeyVerdict,
  hostLookupName,
  keyTypeOf,
  type KnownHostEntry,
  parseKnownHosts,
} from "./known_hosts.ts";
import { formatTarget, type SshTarget } from "./target.ts";

/** How to connect and whom to trust. */
export interface SshConnectOptions extends SshTarget {
  /** Home directory for `~/.ssh` (default `$HOME`). */
  readonly home?: string;
  /** Agent socket (default `$SSH_AUTH_SOCK`); `false` disables the agent. */
  readonly agentSocket?: string | false;
  /** Private key files to offer instead of `~/.ssh/id_*`. */
  readonly identityFiles?: readonly string[];
  /** Private keys as text, offered before the files (cloud drivers pass the key they generated). */
  readonly privateKeys?: readonly string[];
  /** known_hosts files (default `~/.ssh/known_hosts`). */
  readonly knownHostsFiles?: readonly string[];
  /**
   * Replaces the known_hosts check (for machines whose key the caller learnt another way).
   * Receives the raw key blob and returns the verdict.
   */
  readonly verifyHostKey?: (blob: Uint8Array) => HostKeyVerdict;
  /** Time allowed for the TCP connect plus the SSH handshake and authentication (default 20 s). */
  readonly readyTimeoutMs?: number;
}

function homeDir(options: SshConnectOptions): string | undefined {
  return options.home ?? Deno.env.get("HOME");
}

async function loadKnownHosts(files: readonly string[]): Promise<KnownHostEntry[]> {
  const entries: KnownHostEntry[] = [];
  for (const file of files) {
    try {
      entries.push(...parseKnownHosts(await Deno.readTextFile(file), file));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return entries;
}

function hostKeyMessage(
  options: SshConnectOptions,
  verdict: HostKeyVerdict,
  blob: Uint8Array,
  files: readonly string[],
): string {
  const name = hostLookupName(options.host, options.port);
  const key = `${keyTypeOf(blob)} ${fingerprint(blob)}`;
  const scan = options.port === 22
    ? `ssh-keyscan ${options.host}`
    : `ssh-keyscan -p ${options.port} ${options.host}`;
  switch (verdict.status) {
    case "unknown":
      return `ssh: host key of ${name} (${key}) is not in ${
        files.join(", ") || "any known_hosts file"
      }; ` +
        `check the fingerprint, then add it: ${scan} >> ~/.ssh/known_hosts`;
    case "changed":
      return `ssh: host key of ${name} (${key}) does not match the one recorded at ${verdict.source}; ` +
        `the host was reinstalled or the connection is being intercepted; if the change is expected, ` +
        `remove the old key with: ssh-keygen -R '${name}'`;
    case "revoked":
      return `ssh: host key of ${name} (${key}) is marked @revoked at ${verdict.source}; refusing to connect`;
    default:
      return `ssh: host key of ${name} was rejected`;
  }
}

/** An open SSH connection. Opens channels; `close()` ends it. */
export class SshConnection {
  readonly #client: Client;
  readonly #label: string;
  #closed = false;
  readonly #closedPromise: Promise<void>;

  private constructor(client: Client, label: string) {
    this.#client = client;
    this.#label = label;
    this.#closedPromise = new Promise((resolve) => {
      client.once("close", () => {
        this.#closed = true;
        resolve();
      });
    });
    // Errors after the handshake surface on the channels; keep them from crashing the process.
    client.on("error", () => {});
  }

  /** `user@host:port`. */
  get label(): string {
    return this.#label;
  }

  /** True once the connection has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Connects, checks the host key and authenticates. Rejects with a one-line {@link DriverError}. */
  static async connect(options: SshConnectOptions): Promise<SshConnection> {
    const label = formatTarget(options);
    const home = homeDir(options);
    const agent = options.agentSocket === false
      ? undefined
      : options.agentSocket ?? (Deno.env.get("SSH_AUTH_SOCK") || undefined);
    const auth = await planAuth({
      user: options.user,
      home,
      agentSocket: agent,
      identityFiles: options.identityFiles,
      privateKeys: options.privateKeys,
    });
    if (auth.methods.length === 0) {
      const skipped = auth.skipped.length > 0 ? ` (skipped: ${auth.skipped.join(", ")})` : "";
      throw new DriverError(
        "unavailable",
        `ssh: no key to offer to ${label}: SSH_AUTH_SOCK is not set and there is no ~/.ssh/id_ed25519, id_ecdsa or id_rsa${skipped}; create a key with ssh-keygen or start ssh-agent`,
      );
    }
    const knownHostsFiles = options.knownHostsFiles ?? (home ? [`${home}/.ssh/known_hosts`] : []);
    const known = options.verifyHostKey ? [] : await loadKnownHosts(knownHostsFiles);
    const verify = options.verifyHostKey ??
      ((blob: Uint8Array) => checkHostKey(known, options.host, options.port, blob));

    const client = new Client();
    let hostKeyError: string | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      client.once("ready", () => resolve());
      client.once("error", (error: Error & { level?: string }) => reject(error));
    });
    client.connect({
      host: options.host,
      port: options.port,
      username: options.user,
      readyTimeout: options.readyTimeoutMs ?? 20_000,
      keepaliveInterval: 15_000,
      // AES-GCM runs in native code (node:crypto); ssh2's chacha20-poly1305 would run in
      // JavaScript here because its optional native binding is not built under Deno.
      algorithms: {
        cipher: [
          "aes128-gcm@openssh.com",
          "aes256-gcm@openssh.com",
          "aes128-ctr",
          "aes256-ctr",
          "chacha20-poly1305@openssh.com",
        ],
      },
      authHandler: auth.methods.map((m) => ({ ...m })) as never,
      hostVerifier: (key: Uint8Array | string) => {
        const blob = typeof key === "string" ? new TextEncoder().encode(key) : new Uint8Array(key);
        const verdict = verify(blob);
        if (verdict.status === "trusted") return true;
        hostKeyError = hostKeyMessage(options, verdict, blob, knownHostsFiles);
        return false;
      },
    });
    try {
      await ready;
    } catch (error) {
      client.end();
      if (hostKeyError) throw new DriverError("unavailable", hostKeyError);
      const e = error as Error & { level?: string; code?: string };
      if (e.level === "client-authentication") {
        throw new DriverError(
          "unavailable",
          `ssh: ${label} accepted none of the keys offered (${
            auth.offered.join(", ")
          }); add your public key to ${options.user}'s ~/.ssh/authorized_keys on the host or load the right key into ssh-agent`,
        );
      }
      if (e.level === "client-timeout") {
        throw new DriverError(
          "unavailable",
          `ssh: ${label} did not complete the SSH handshake in time; check that sshd runs there and the address is right`,
        );
      }
      throw new DriverError(
        "unavailable",
        `ssh: cannot connect to ${label}: ${
          e.code ?? e.message
        }; check that the host is up, sshd listens on port ${options.port} and no firewall blocks it`,
      );
    }
    // Every Engine API request is a few small writes; Nagle's algorithm would hold them back
    // until the peer's delayed ACK (~40 ms each).
    client.setNoDelay(true);
    await disableNagleOnServer(client);
    return new SshConnection(client, label);
  }

  /** Opens a channel to a Unix socket on the remote host (`direct-streamlocal@openssh.com`). */
  openStreamLocal(socketPath: string): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        reject(new DriverError("unavailable", `ssh: the connection to ${this.#label} is closed`));
        return;
      }
      try {
        this.#client.openssh_forwardOutStreamLocal(
          socketPath,
          (error: Error | undefined, channel: ClientChannel) => {
            if (error) {
              reject(
                new DriverError(
                  "unavailable",
                  `ssh: ${this.#label} refused a channel to ${socketPath} (${error.message}); check that the socket exists, ${
                    this.#label.split("@")[0]
                  } may use it, and sshd allows stream forwarding (AllowStreamLocalForwarding)`,
                ),
              );
            } else resolve(channel as unknown as Duplex);
          },
        );
      } catch (error) {
        reject(
          new DriverError(
            "unavailable",
            `ssh: the connection to ${this.#label} is closed (${(error as Error).message})`,
          ),
        );
      }
    });
  }

  /**
   * Opens a TCP connection from the remote host to `host:port` (`direct-tcpip`, what `ssh -L`
   * uses): a service's readiness probe reaches the container's address on the engine's host.
   * Rejects when the remote side cannot connect (nothing listens there yet).
   */
  openTcp(host: string, port: number): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        reject(new DriverError("unavailable", `ssh: the connection to ${this.#label} is closed`));
        return;
      }
      try {
        this.#client.forwardOut(
          "127.0.0.1",
          0,
          host,
          port,
          (error: Error | undefined, channel: ClientChannel) => {
            if (error) reject(new Error(`${host}:${port} through ssh: ${error.message}`));
            else resolve(channel as unknown as Duplex);
          },
        );
      } catch (error) {
        reject(
          new DriverError(
            "unavailable",
            `ssh: the connection to ${this.#label} is closed (${(error as Error).message})`,
          ),
        );
      }
    });
  }

  /** Runs a command on the host and collects its output (for readiness checks). */
  exec(command: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      this.#client.exec(command, (error: Error | undefined, channel: ClientChannel) => {
        if (error) {
          reject(
            new DriverError(
              "failed",
              `ssh: cannot run a command on ${this.#label}: ${error.message}`,
            ),
          );
          return;
        }
        const out: Uint8Array[] = [];
        const err: Uint8Array[] = [];
        let code = -1;
        channel.on("data", (b: Uint8Array) => out.push(b));
        channel.stderr.on("data", (b: Uint8Array) => err.push(b));
        channel.on("exit", (c: number | null) => code = c ?? -1);
        channel.on("close", () => {
          const text = (parts: Uint8Array[]) => new TextDecoder().decode(concatBytes(parts));
          resolve({ code, stdout: text(out), stderr: text(err) });
        });
      });
    });
  }

  /** Ends the connection and waits until it is closed. */
  async close(): Promise<void> {
    if (!this.#closed) this.#client.end();
    await Promise.race([this.#closedPromise, new Promise((r) => setTimeout(r, 2000))]);
    if (!this.#closed) this.#client.destroy();
  }
}

/** A shared connection handed out by {@link acquireSshConnection}; call `release()` when done. */
export interface SshLease {
  /** The shared connection. */
  readonly connection: SshConnection;
  /** Gives the lease back; the last release closes the connection. */
  release(): Promise<void>;
}

const pool = new Map<string, { connecting: Promise<SshConnection>; users: number }>();

/**
 * One connection per `user@host:port` for the whole process: the first caller connects, later
 * callers share it; a connection that died is replaced on the next acquire.
 */
export async function acquireSshConnection(options: SshConnectOptions): Promise<SshLease> {
  const key = formatTarget(options);
  let slot = pool.get(key);
  if (slot) {
    const existing = await slot.connecting.catch(() => undefined);
    if (!existing || existing.closed) {
      if (pool.get(key) === slot) pool.delete(key);
      slot = undefined;
    }
  }
  if (!slot) {
    slot = { connecting: SshConnection.connect(options), users: 0 };
    pool.set(key, slot);
    slot.connecting.catch(() => {
      if (pool.get(key) === slot) pool.delete(key);
    });
  }
  slot.users++;
  const current = slot;
  let connection: SshConnection;
  try {
    connection = await current.connecting;
  } catch (error) {
    current.users--;
    throw error;
  }
  let released = false;
  return {
    connection,
    async release() {
      if (released) return;
      released = true;
      current.users--;
      if (current.users === 0) {
        if (pool.get(key) === current) pool.delete(key);
        await connection.close();
      }
    },
  };
}

/**
 * OpenSSH's sshd turns off Nagle's algorithm on a connection (TCP_NODELAY) only when the
 * connection first runs a command or shell, which `docker -H ssh://` does (`docker system
 * dial-stdio`) and forwarded channels alone never do. Without it, two small answers in a row
 * (a wait's result and the end of an attach stream) wait for this side's delayed acknowledgement,
 * about 40 ms. So one no-op command runs first; whether it succeeds does not matter (a host that
 * refuses commands only keeps the slower timing), and it is given at most two seconds.
 */
export function disableNagleOnServer(
  client: Pick<Client, "exec">,
  timeoutMs = 2_000,
): Promise<void> {
  return new Promise<void>((resolve) => {
    let open: { close(): unknown } | undefined;
    const timer = setTimeout(() => {
      // A forced command that never ends (authorized_keys command="...") must not keep a
      // channel and a remote process open for the whole connection.
      open?.close();
      resolve();
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    try {
      client.exec("true", (error, channel) => {
        if (error) return done();
        open = channel;
        channel.on("data", () => {});
        channel.stderr.on("data", () => {});
        channel.once("close", done);
      });
    } catch {
      done();
    }
  });
}
