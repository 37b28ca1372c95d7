/**
 * Parsing `ssh://[user@]host[:port]` engine addresses.
 *
 * @module
 */

import { DriverError } from "../contract.ts";

/** Where to connect: user, host and port. */
export interface SshTarget {
  /** Login user. */
  readonly user: string;
  /** Host name or IP address (IPv6 without brackets). */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
}

/**
 * Parses `ssh://[user@]host[:port]` (a trailing `/` is allowed, a path is not). The user defaults
 * to `defaultUser` (the caller passes `$USER`, or `root`), the port to 22.
 */
export function parseSshUrl(url: string, defaultUser = "root"): SshTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DriverError(
      "invalid",
      `invalid ssh address ${JSON.stringify(redact(url))}: expected ssh://user@host[:port]`,
    );
  }
  if (parsed.password) {
    throw new DriverError(
      "invalid",
      "ssh addresses must not contain a password: use a key or ssh-agent",
    );
  }
  if (parsed.protocol !== "ssh:" || parsed.hostname === "") {
    throw new DriverError(
      "invalid",
      `invalid ssh address ${JSON.stringify(redact(url))}: expected ssh://user@host[:port]`,
    );
  }
  if ((parsed.pathname !== "" && parsed.pathname !== "/") || parsed.search || parsed.hash) {
    throw new DriverError(
      "invalid",
      `invalid ssh address ${
        JSON.stringify(redact(url))
      }: a path, query or fragment is not supported; use ssh://user@host[:port]`,
    );
  }
  const port = parsed.port === "" ? 22 : Number(parsed.port);
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  return { user: decodeURIComponent(parsed.username) || defaultUser, host, port };
}

/** The address with any password replaced by `***`, for messages. */
function redact(url: string): string {
  return url.replace(/\/\/([^/@:]*):[^/@]*@/, "//$1:***@");
}

/** `user@host:port`, for messages and as a connection-pool key. */
export function formatTarget(target: SshTarget): string {
  const host = target.host.includes(":") ? `[${target.host}]` : target.host;
  return `${target.user}@${host}:${target.port}`;
}
