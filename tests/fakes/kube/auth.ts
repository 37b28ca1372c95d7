/**
 * Authentication as the API server does it: a client certificate signed by the cluster CA
 * (user = CN, groups = O) or a bearer token from the server's token list. Anything else is
 * `401 Unauthorized`.
 *
 * @module
 */

import { X509Certificate } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";

/** Who made a request. */
export interface KubeUser {
  /** The user name. */
  readonly name: string;
  /** How they proved it. */
  readonly method: "x509" | "token";
}

/** Checks requests against the cluster CA and the known bearer tokens. */
export class Authenticator {
  #ca: X509Certificate;
  #tokens: Map<string, string>;

  /** `tokens` maps a bearer token to its user name. */
  constructor(caPem: string, tokens: ReadonlyMap<string, string>) {
    this.#ca = new X509Certificate(caPem);
    this.#tokens = new Map(tokens);
  }

  /** Adds a bearer token (tests that rotate credentials). */
  addToken(token: string, user: string): void {
    this.#tokens.set(token, user);
  }

  /** The authenticated user, or `undefined` (the caller answers 401). */
  authenticate(req: IncomingMessage): KubeUser | undefined {
    const header = req.headers.authorization;
    if (typeof header === "string" && header.startsWith("Bearer ")) {
      const user = this.#tokens.get(header.slice(7).trim());
      return user === undefined ? undefined : { name: user, method: "token" };
    }
    const socket = req.socket as TLSSocket;
    const peer = socket.getPeerCertificate?.(true);
    if (!peer?.raw) return undefined;
    try {
      const cert = new X509Certificate(peer.raw);
      const now = Date.now();
      if (!cert.checkIssued(this.#ca) || !cert.verify(this.#ca.publicKey)) return undefined;
      if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now) return undefined;
      const cn = /CN=([^\n,]+)/.exec(cert.subject)?.[1];
      return cn ? { name: cn, method: "x509" } : undefined;
    } catch {
      return undefined;
    }
  }
}
