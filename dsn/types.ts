/**
 * Types shared by the DSN layer, the driver registry and the CLI.
 *
 * @module
 */

/** The name of a driver. */
export type DriverName =
  | "native"
  | "docker"
  | "k8s"
  | "digitalocean"
  | "hetzner"
  | "fly"
  | "qemu"
  | "vz";

/** Every driver PocketCI knows, in the order the README lists them. */
export const DRIVER_NAMES: readonly DriverName[] = [
  "native",
  "docker",
  "k8s",
  "digitalocean",
  "hetzner",
  "fly",
  "qemu",
  "vz",
];

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
  /** Where each `config` value came from: the DSN, its environment variable, or the default. */
  readonly sources?: Readonly<Record<string, ConfigSource>>;
}

/** A bad driver string or configuration; the message is one line naming the problem and the fix. */
export class DsnError extends Error {
  /** Creates a DSN error. */
  constructor(message: string) {
    super(message);
    this.name = "DsnError";
  }
}

/** The kind of value a driver parameter takes. */
export type ParameterType =
  | "string"
  | "integer"
  | "boolean"
  | "duration"
  | "enum"
  | "path"
  | "url"
  | "list"
  | "map"
  | "dns-label";

/** One driver parameter, as its schema describes it (for `pocketci drivers` and the README). */
export interface ParameterDescription {
  /** The parameter name, as written in the DSN and as the key in `config`. */
  readonly name: string;
  /** The kind of value. */
  readonly type: ParameterType;
  /** A short human rendering of the type and its constraints, e.g. `integer ≥ 1`. */
  readonly typeText: string;
  /** The default as a human string, or null when there is none (required or absent). */
  readonly default: string | null;
  /** The environment variable used when the DSN does not give the parameter, or null. */
  readonly env: string | null;
  /** What the parameter does. */
  readonly description: string;
  /** Whether the value is a secret: never printed, redacted as `***`. */
  readonly secret: boolean;
  /** Whether the parameter must be given (in the DSN or its environment variable). */
  readonly required: boolean;
  /** The accepted values of an enum parameter. */
  readonly values?: readonly string[];
  /** The smallest accepted integer. */
  readonly min?: number;
  /** The largest accepted integer. */
  readonly max?: number;
}

/** A driver and its parameters, as the schemas describe them. */
export interface DriverDescription {
  /** The driver name. */
  readonly name: DriverName;
  /** One sentence on what the driver runs tasks on. */
  readonly summary: string;
  /** Every parameter the driver understands, in the spec's order. */
  readonly parameters: readonly ParameterDescription[];
}

/** Where a resolved configuration value came from. */
export type ConfigSource = "dsn" | "env" | "default";

/** Facts about the host that decide host-dependent defaults (qemu `accel`, `qemu_binary`). */
export interface HostFacts {
  /** The operating system, as `Deno.build.os` names it. */
  readonly os: string;
  /** The CPU architecture, as `Deno.build.arch` names it. */
  readonly arch: string;
  /** Whether `/dev/kvm` exists. */
  readonly kvm: boolean;
}
