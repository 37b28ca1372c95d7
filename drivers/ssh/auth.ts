/**
 * Which credentials an SSH connection offers: the agent at `SSH_AUTH_SOCK` first, then the
 * default private keys in `~/.ssh` (or the ones the caller names), skipping keys that need a
 * passphrase.
 *
 * @module
 */

// @ts-types="npm:@types/ssh2@^1"
import { utils } from "ssh2";

/** One authentication method in the order it is tried (the shape ssh2's `authHandler` takes). */
export type AuthMethod =
  | { readonly type: "agent"; readonly username: string; readonly agent: string }
  | { readonly type: "publickey"; readonly username: string; readonly key: string };

/** The credentials found, plus what was looked at (for a useful error when none work). */
export interface AuthPlan {
  /** Methods to try, agent first. */
  readonly methods: AuthMethod[];
  /** Human-readable list of what is offered (`agent /run/...`, `~/.ssh/id_ed25519`). */
  readonly offered: string[];
  /** Keys found but skipped, with the reason. */
  readonly skipped: string[];
}

/** The private keys OpenSSH tries by default, in its order. */
export const DEFAULT_IDENTITY_FILES: readonly string[] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/** Options for {@link planAuth}. */
export interface AuthOptions {
  /** Login user. */
  readonly user: string;
  /** The home directory whose `.ssh` holds the default keys. */
  readonly home?: string;
  /** Agent socket; `undefined` means none. */
  readonly agentSocket?: string;
  /** Private key files to use instead of the defaults. */
  readonly identityFiles?: readonly string[];
  /** Private keys given as text (for drivers that generate their own key). */
  readonly privateKeys?: readonly string[];
}

/** Collects the authentication methods to offer. Reads key files; never prompts. */
export async function planAuth(options: AuthOptions): Promise<AuthPlan> {
  const methods: AuthMethod[] = [];
  const offered: string[] = [];
  const skipped: string[] = [];
  if (options.agentSocket) {
    methods.push({ type: "agent", username: options.user, agent: options.agentSocket });
    offered.push(`agent ${options.agentSocket}`);
  }
  for (const [index, key] of (options.privateKeys ?? []).entries()) {
    methods.push({ type: "publickey", username: options.user, key });
    offered.push(`given key ${index + 1}`);
  }
  const files = options.identityFiles ??
    (options.home ? DEFAULT_IDENTITY_FILES.map((f) => `${options.home}/.ssh/${f}`) : []);
  for (const file of files) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (error) {
      if (options.identityFiles && !(error instanceof Deno.errors.NotFound)) {
        skipped.push(`${file} (${error instanceof Error ? error.message : String(error)})`);
      } else if (options.identityFiles) skipped.push(`${file} (missing)`);
      continue;
    }
    const parsed = utils.parseKey(text);
    if (parsed instanceof Error) {
      skipped.push(
        `${file} (${
          /passphrase|encrypted/i.test(parsed.message)
            ? "needs a passphrase: load it into ssh-agent"
            : parsed.message
        })`,
      );
      continue;
    }
    methods.push({ type: "publickey", username: options.user, key: text });
    offered.push(file);
  }
  return { methods, offered, skipped };
}
