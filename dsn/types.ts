/**
 * Types shared by the DSN layer, the driver registry and the CLI.
 *
 * @module
 */

/** Every driver PocketCI knows, in the order the README lists them. */
export const DRIVER_NAMES = [
  "native",
  "docker",
  "k8s",
  "digitalocean",
  "hetzner",
  "fly",
  "qemu",
  "vz",
] as const;

/** The name of a driver. */
export type DriverName = typeof DRIVER_NAMES[number];

/** Which of the spec's three forms a DSN was written in. */
export type DsnForm = "plain" | "url" | "colon";

/** The syntactic parse of a driver string, before any driver-specific validation. */
export interface ParsedDsn {
  /** The driver, lowercase. */
  readonly driver: DriverName;
  /** The form the string was written in. */
  readonly form: DsnForm;
  /** The URL authority, when one was given. */
  readonly namespace?: string;
  /** Parameters as given (URL form: percent-decoded; colon form: literal). */
  readonly params: Readonly<Record<string, string>>;
}

/** A driver string parsed, validated and resolved against the environment and defaults. */
export interface ResolvedDsn {
  /** The driver, lowercase. */
  readonly driver: DriverName;
  /** The namespace used to label and group resources (URL authority or the stable default). */
  readonly namespace: string;
  /** Whether the namespace came from the DSN (true) or is the stable default (false). */
  readonly namespaceFromDsn: boolean;
  /** Parameters as given, with secret values redacted. */
  readonly params: Readonly<Record<string, string>>;
  /**
   * The resolved configuration, keyed by the spec's parameter names. Secrets hold their
   * real value here; use `redactConfig` before printing.
   */
  readonly config: Readonly<Record<string, unknown>>;
  /** Warnings, such as unknown parameters (never echoing values). */
  readonly warnings: readonly string[];
}

/** A bad driver string or configuration; the message is one line naming the problem and the fix. */
export class DsnError extends Error {
  /** Creates a DSN error. */
  constructor(message: string) {
    super(message);
    this.name = "DsnError";
  }
}
