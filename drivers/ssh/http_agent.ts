/**
 * An `http.Agent` whose every connection is a new channel on one SSH connection to a remote Unix
 * socket, so an HTTP client (dockerode) speaks to a remote Docker engine without a new SSH
 * connection or a `docker system dial-stdio` process per request. Upgraded connections (attach
 * and exec with stdin) work as well, since the channel is a plain duplex byte stream.
 *
 * @module
 */

import { Agent } from "node:http";
import type { Duplex } from "node:stream";
import type { SshConnection } from "./connection.ts";

type Callback = (error: Error | null, socket?: Duplex) => void;

function socketShims(stream: Duplex): Duplex {
  // The http client calls these on net.Socket; a channel has no such knobs.
  const s = stream as Duplex & Record<string, unknown>;
  for (const name of ["setNoDelay", "setKeepAlive", "ref", "unref"]) {
    if (typeof s[name] !== "function") s[name] = () => stream;
  }
  if (typeof s.setTimeout !== "function") s.setTimeout = () => stream;
  return stream;
}

/** Creates an agent that opens one streamlocal channel to `socketPath` per HTTP connection. */
export function sshSocketAgent(connection: SshConnection, socketPath: string): Agent {
  const agent = new Agent({ keepAlive: false });
  // docker-modem logs every request's options with util.inspect (showHidden, unlimited depth)
  // even when its debug output is off; walking the SSH client behind this agent took ~9 ms per
  // request. A custom inspection keeps that to a name.
  Object.defineProperty(agent, Symbol.for("nodejs.util.inspect.custom"), {
    value: () => `SshSocketAgent(${socketPath})`,
  });
  (agent as unknown as { createConnection: (o: unknown, cb: Callback) => undefined })
    .createConnection = (
      _options: unknown,
      callback: Callback,
    ) => {
      connection.openStreamLocal(socketPath).then(
        (stream) => callback(null, socketShims(stream)),
        (error: Error) => callback(error),
      );
      return undefined;
    };
  return agent;
}
