/**
 * One zod schema per driver: the single source of truth for every parameter's type,
 * default, environment variable and help text. The schemas stay inside this module;
 * callers get plain descriptions and validated plain objects.
 *
 * @module
 */

import { z } from "zod";
import { isDuration, parseDuration } from "./duration.ts";
import {
  DRIVER_NAMES,
  type DriverName,
  type HostFacts,
  type ParameterDescription,
  type ParameterType,
} from "./types.ts";

/** What a schema needs to resolve host- and DSN-dependent defaults. */
export interface SchemaContext {
  /** The home directory that `~` expands to; `~` is kept when unknown. */
  readonly home?: string;
  /** The host deciding qemu's `accel` and `qemu_binary` defaults. */
  readonly host: HostFacts;
  /** The URL authority of the DSN, when one was given (k8s's namespace default). */
  readonly authority?: string;
}

/** One problem found while validating a driver's configuration. */
export interface ConfigIssue {
  /** The parameter. */
  readonly key: string;
  /** True when a required parameter was not given at all. */
  readonly missing: boolean;
  /** What is wrong, starting with "must ..." (never containing a secret value). */
  readonly message: string;
}

/** The outcome of validating a driver's raw parameter values. */
export type ConfigResult =
  | { readonly ok: true; readonly config: Record<string, unknown> }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

type ParamMeta = Omit<ParameterDescription, "name">;
type Field = z.ZodType<unknown, string | undefined>;
type Shape = Record<string, Field>;

const PARAMS = z.registry<ParamMeta>();

/** One sentence per driver. */
export const DRIVER_SUMMARIES: Readonly<Record<DriverName, string>> = {
  native: "Runs tasks as processes on this host (the task image is ignored).",
  docker: "Runs each task in a container on a Docker daemon, local or remote.",
  k8s: "Runs each task as a pod in a Kubernetes namespace.",
  digitalocean:
    "Creates DigitalOcean droplets running Docker (a worker pool per namespace) and runs tasks there.",
  hetzner:
    "Creates Hetzner Cloud servers running Docker (a worker pool per namespace) and runs tasks there.",
  fly: "Runs each task as a Fly Machine on Fly.io.",
  qemu: "Runs tasks inside a local QEMU virtual machine.",
  vz: "Runs tasks inside a local Apple Virtualization.framework VM (macOS only).",
};

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

interface Common {
  readonly description: string;
  readonly env?: string;
}

function described<T extends Field>(
  schema: T,
  type: ParameterType,
  typeText: string,
  common: Common,
  extra: Partial<ParamMeta> = {},
): Field {
  PARAMS.add(schema, {
    type,
    typeText,
    default: null,
    env: common.env ?? null,
    description: common.description,
    secret: false,
    required: false,
    ...extra,
  });
  return schema;
}

function got(input: unknown): string {
  return `got ${JSON.stringify(input)}`;
}

function secretParam(common: Common): Field {
  const schema = z.string({ error: "is required" });
  return described(schema, "string", "string (secret)", common, { secret: true, required: true });
}

function stringParam(common: Common, fallback?: string, defaultText?: string): Field {
  const schema = fallback === undefined ? z.string().optional() : z.string().default(fallback);
  return described(schema, "string", "string", common, {
    default: defaultText ?? fallback ?? null,
  });
}

function sizeParam(common: Common, fallback: string): Field {
  return described(z.string().default(fallback), "string", "slug or auto", common, {
    default: fallback,
  });
}

function intParam(common: Common, fallback: number, min: number, max: number): Field {
  const typeText = max >= 10_000 ? `integer ≥ ${min}` : `integer ${min}–${max}`;
  const expected = `must be an ${typeText}`;
  const schema = z.string()
    .regex(/^[0-9]+$/, { error: (issue) => `${expected}, ${got(issue.input)}` })
    .transform(Number)
    .pipe(
      z.number()
        .min(min, { error: (issue) => `${expected}, ${got(String(issue.input))}` })
        .max(max, { error: (issue) => `must be at most ${max}, ${got(String(issue.input))}` }),
    )
    .default(fallback);
  return described(schema, "integer", typeText, common, { default: String(fallback), min, max });
}

function boolParam(common: Common, fallback: boolean): Field {
  const schema = z.enum(["true", "false"], {
    error: (issue) => `must be true or false, ${got(issue.input)}`,
  }).transform((value) => value === "true").default(fallback);
  return described(schema, "boolean", "true or false", common, { default: String(fallback) });
}

function durationParam(common: Common, fallback: string, zeroMeansNoLimit: boolean): Field {
  const expected = "must be a duration such as 10s, 5m or 1h30m";
  let schema = z.string().refine(isDuration, {
    error: (issue) =>
      `${expected}${zeroMeansNoLimit ? " (0 = no limit)" : ""}, ${got(issue.input)}`,
  });
  if (!zeroMeansNoLimit) {
    schema = schema.refine((value) => !isDuration(value) || parseDuration(value) > 0, {
      error: (issue) => `must be a duration greater than 0, such as 10s, ${got(issue.input)}`,
    });
  }
  const typeText = zeroMeansNoLimit ? "duration (0 = no limit)" : "duration > 0";
  return described(schema.default(fallback), "duration", typeText, common, { default: fallback });
}

function enumParam(
  common: Common,
  values: readonly [string, ...string[]],
  fallback: string,
  defaultText: string,
): Field {
  const schema = z.enum(values, {
    error: (issue) => `must be one of ${values.join(", ")}, ${got(issue.input)}`,
  }).default(fallback);
  return described(schema, "enum", `one of ${values.join(", ")}`, common, {
    default: defaultText,
    values,
  });
}

function pathParam(
  common: Common,
  ctx: SchemaContext,
  fallback?: string,
  defaultText?: string,
): Field {
  const expand = (value: string): string => expandHome(value, ctx.home);
  const base = z.string().transform(expand);
  const schema = fallback === undefined ? base.optional() : base.prefault(fallback);
  return described(schema, "path", "path", common, { default: defaultText ?? fallback ?? null });
}

function dockerHostParam(common: Common, fallback: string): Field {
  const schema = z.string().refine((value) => /^(unix|tcp|ssh|http|https|npipe):\/\//.test(value), {
    error: (issue) =>
      "must be a URL starting with unix://, tcp://, ssh://, http://, https:// or npipe://, " +
      got(withoutUserinfo(String(issue.input))),
  }).default(fallback);
  return described(schema, "url", "URL (unix, tcp, ssh, http, https, npipe)", common, {
    default: fallback,
  });
}

function namespaceParam(common: Common, fallback: string): Field {
  const schema = z.string().regex(DNS_LABEL, {
    error: (issue) =>
      "must be a DNS label (lowercase letters, digits and '-', at most 63, starting and ending " +
      `with a letter or digit), ${got(issue.input)}`,
  }).default(fallback);
  return described(schema, "dns-label", "DNS label", common, {
    default: "URL authority, else default",
  });
}

function tagsParam(common: Common): Field {
  const schema = z.string()
    .transform((value) => value.split(",").map((item) => item.trim()).filter((item) => item))
    .default([]);
  return described(schema, "list", "comma-separated list", common, { default: "(none)" });
}

function labelsParam(common: Common): Field {
  const schema = z.string().transform((value, ctx) => {
    const labels: Record<string, string> = {};
    for (const item of value.split(",").map((piece) => piece.trim()).filter((piece) => piece)) {
      const equals = item.indexOf("=");
      const key = equals < 0 ? item : item.slice(0, equals);
      if (equals <= 0) {
        ctx.issues.push({
          code: "custom",
          input: value,
          message: `must be comma-separated key=value pairs, got the item ${JSON.stringify(item)}`,
        });
        return z.NEVER;
      }
      if (Object.hasOwn(labels, key)) {
        ctx.issues.push({
          code: "custom",
          input: value,
          message: `must not repeat a key, got ${JSON.stringify(key)} twice`,
        });
        return z.NEVER;
      }
      labels[key] = item.slice(equals + 1);
    }
    return labels;
  }).default({});
  return described(schema, "map", "comma-separated key=value list", common, {
    default: "(none)",
  });
}

function accelDefault(host: HostFacts): string {
  if (host.os === "darwin") return "hvf";
  if (host.os === "linux" && host.kvm) return "kvm";
  return "tcg";
}

function qemuBinaryDefault(host: HostFacts): string {
  return host.arch === "aarch64" ? "qemu-system-aarch64" : "qemu-system-x86_64";
}

/** Expands a leading `~` or `~/` to `home`; other values are returned unchanged. */
export function expandHome(value: string, home: string | undefined): string {
  if (home === undefined) return value;
  if (value === "~") return home;
  if (value.startsWith("~/")) return home.replace(/\/+$/, "") + value.slice(1);
  return value;
}

/** `scheme://user:secret@host` → `scheme://***@host`, so a password never reaches output. */
export function withoutUserinfo(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@?#]*@/i, "$1***@");
}

function cloudPoolParams(prefix: string, noun: string): Shape {
  return {
    max_workers: intParam(
      { description: `Maximum concurrent ${noun} in the pool`, env: `${prefix}_MAX_WORKERS` },
      1,
      1,
      10_000,
    ),
    reuse_worker: boolParam({
      description: `Park ${noun} on close instead of deleting them`,
      env: `${prefix}_REUSE_WORKER`,
    }, false),
    poll_interval: durationParam(
      {
        description: "How often to check for a free worker slot",
        env: `${prefix}_POLL_INTERVAL`,
      },
      "10s",
      false,
    ),
    wait_timeout: durationParam(
      {
        description: "Max time to wait for a slot",
        env: `${prefix}_WAIT_TIMEOUT`,
      },
      "10m",
      true,
    ),
    idle_timeout: durationParam(
      {
        description: `How long a parked ${
          noun.replace(/s$/, "")
        } may stay idle before a run or gc deletes it`,
        env: `${prefix}_IDLE_TIMEOUT`,
      },
      "30m",
      false,
    ),
  };
}

function timeoutParams(prefix: string, machine: string): Shape {
  return {
    ssh_timeout: durationParam(
      {
        description: `Timeout for SSH to become available on a new ${machine}`,
        env: `${prefix}_SSH_TIMEOUT`,
      },
      "5m",
      false,
    ),
    docker_timeout: durationParam(
      {
        description: `Timeout for Docker to become available on a new ${machine}`,
        env: `${prefix}_DOCKER_TIMEOUT`,
      },
      "5m",
      false,
    ),
  };
}

function vmParams(prefix: string): Shape {
  return {
    memory: intParam(
      { description: "VM memory in MB", env: `${prefix}_MEMORY` },
      2048,
      256,
      1_048_576,
    ),
    cpus: intParam({ description: "Number of vCPUs", env: `${prefix}_CPUS` }, 2, 1, 256),
  };
}

function shapeOf(driver: DriverName, ctx: SchemaContext): Shape {
  switch (driver) {
    case "native":
      return {};
    case "docker":
      return {
        host: dockerHostParam(
          { description: "Docker daemon host", env: "DOCKER_HOST" },
          "unix:///var/run/docker.sock",
        ),
      };
    case "k8s":
      return {
        namespace: namespaceParam(
          { description: "Kubernetes namespace for resources" },
          ctx.authority ?? "default",
        ),
        kubeconfig: pathParam(
          { description: "Path to the kubeconfig file", env: "KUBECONFIG" },
          ctx,
          "~/.kube/config",
        ),
        start_timeout: durationParam(
          { description: "How long a pod may stay Pending before the task fails" },
          "5m",
          false,
        ),
        storage_class: stringParam(
          { description: "StorageClass of volume and cache claims" },
          undefined,
          "the cluster's default class",
        ),
        volume_size: stringParam(
          { description: "Size requested by each volume and cache claim" },
          "1Gi",
        ),
        create_namespace: boolParam(
          { description: "Create the Kubernetes namespace when it does not exist" },
          false,
        ),
      };
    case "digitalocean":
      return {
        token: secretParam({ description: "DigitalOcean API token", env: "DIGITALOCEAN_TOKEN" }),
        image: stringParam(
          { description: "Droplet image slug", env: "DIGITALOCEAN_IMAGE" },
          "docker-20-04",
        ),
        size: sizeParam(
          {
            description: "Droplet size slug, or auto to pick from the tasks' limits",
            env: "DIGITALOCEAN_SIZE",
          },
          "s-1vcpu-1gb",
        ),
        region: stringParam({ description: "Droplet region", env: "DIGITALOCEAN_REGION" }, "nyc3"),
        disk_size: intParam(
          { description: "Disk size for Docker volumes (GB)", env: "DIGITALOCEAN_DISK_SIZE" },
          25,
          1,
          16_384,
        ),
        tags: tagsParam({ description: "Custom droplet tags", env: "DIGITALOCEAN_TAGS" }),
        ...cloudPoolParams("DIGITALOCEAN", "droplets"),
        ...timeoutParams("DIGITALOCEAN", "droplet"),
      };
    case "hetzner":
      return {
        token: secretParam({ description: "Hetzner Cloud API token", env: "HETZNER_TOKEN" }),
        image: stringParam({ description: "Server image name", env: "HETZNER_IMAGE" }, "docker-ce"),
        server_type: sizeParam(
          {
            description: "Server type slug, or auto to pick from the tasks' limits",
            env: "HETZNER_SERVER_TYPE",
          },
          "cx23",
        ),
        location: stringParam({ description: "Server location", env: "HETZNER_LOCATION" }, "nbg1"),
        disk_size: intParam(
          { description: "Disk size for Docker volumes (GB)", env: "HETZNER_DISK_SIZE" },
          10,
          1,
          16_384,
        ),
        ...timeoutParams("HETZNER", "server"),
        labels: labelsParam({ description: "Custom server labels", env: "HETZNER_LABELS" }),
        ...cloudPoolParams("HETZNER", "servers"),
      };
    case "fly":
      return {
        token: secretParam({ description: "Fly API token", env: "FLY_API_TOKEN" }),
        app: stringParam(
          { description: "Existing Fly app name; unset creates an ephemeral app", env: "FLY_APP" },
          undefined,
          "(auto-created)",
        ),
        region: stringParam(
          { description: "Fly region for machines", env: "FLY_REGION" },
          undefined,
          "(Fly's default)",
        ),
        org: stringParam({ description: "Fly organization slug", env: "FLY_ORG" }, "personal"),
        size: stringParam({ description: "Machine size preset" }, "shared-cpu-1x"),
      };
    case "qemu":
      return {
        ...vmParams("QEMU"),
        accel: enumParam(
          { description: "Acceleration backend", env: "QEMU_ACCEL" },
          ["hvf", "kvm", "tcg"],
          accelDefault(ctx.host),
          "hvf (macOS), kvm (Linux with /dev/kvm), else tcg",
        ),
        qemu_binary: pathParam(
          { description: "Path or name of the QEMU binary", env: "QEMU_BINARY" },
          ctx,
          qemuBinaryDefault(ctx.host),
          "qemu-system-x86_64 or qemu-system-aarch64 (host architecture)",
        ),
        cache_dir: pathParam(
          { description: "Directory for cached cloud images", env: "QEMU_CACHE_DIR" },
          ctx,
          "~/.cache/ci/qemu",
        ),
        image: pathParam(
          { description: "Path to a custom qcow2 base image", env: "QEMU_IMAGE" },
          ctx,
          undefined,
          "(downloads an Ubuntu cloud image)",
        ),
        boot_timeout: durationParam(
          {
            description:
              "How long the guest may take until its agent answers and cloud-init is done",
            env: "QEMU_BOOT_TIMEOUT",
          },
          "5m",
          false,
        ),
        kernel: pathParam(
          { description: "Kernel to boot directly (with initrd and append)", env: "QEMU_KERNEL" },
          ctx,
          undefined,
          "(boots the image's own bootloader)",
        ),
        initrd: pathParam(
          { description: "Initramfs for a directly booted kernel", env: "QEMU_INITRD" },
          ctx,
          undefined,
          "(none)",
        ),
        append: stringParam(
          { description: "Kernel command line for a directly booted kernel", env: "QEMU_APPEND" },
          undefined,
          "console=ttyS0 (x86_64) or console=ttyAMA0 (aarch64)",
        ),
        ssh_key: pathParam(
          {
            description:
              "Public key file the cloud-init seed authorizes for SSH (root and the default user)",
            env: "QEMU_SSH_KEY",
          },
          ctx,
          undefined,
          "(none; passwords stay locked)",
        ),
      };
    case "vz":
      return {
        ...vmParams("VZ"),
        cache_dir: pathParam(
          { description: "Directory for cached cloud images", env: "VZ_CACHE_DIR" },
          ctx,
          "~/.cache/ci/vz",
        ),
        image: pathParam(
          { description: "Path to a custom raw base image", env: "VZ_IMAGE" },
          ctx,
          undefined,
          "(downloads an Ubuntu cloud image)",
        ),
      };
  }
}

const DESCRIBE_CONTEXT: SchemaContext = { host: { os: "linux", arch: "x86_64", kvm: false } };
const descriptions = new Map<DriverName, readonly ParameterDescription[]>();

/** Every parameter of `driver`, in the spec's order, read from its schema. */
export function describeParameters(driver: DriverName): readonly ParameterDescription[] {
  let described = descriptions.get(driver);
  if (described === undefined) {
    described = Object.entries(shapeOf(driver, DESCRIBE_CONTEXT)).map(([name, field]) => {
      const meta = PARAMS.get(field);
      if (meta === undefined) throw new Error(`parameter ${driver}.${name} has no description`);
      return { name, ...meta };
    });
    descriptions.set(driver, described);
  }
  return described;
}

/** The parameter names `driver` knows. */
export function parameterNames(driver: DriverName): readonly string[] {
  return describeParameters(driver).map((parameter) => parameter.name);
}

/** The names of `driver`'s list-valued parameters (`tags`, `labels`), which keep their commas. */
export function listParameterNames(driver: DriverName): readonly string[] {
  return describeParameters(driver)
    .filter((parameter) => parameter.type === "list" || parameter.type === "map")
    .map((parameter) => parameter.name);
}

/** Every secret parameter name of any driver. */
export function secretParameterNames(): readonly string[] {
  const names = new Set<string>();
  for (const driver of DRIVER_NAMES) {
    for (const parameter of describeParameters(driver)) {
      if (parameter.secret) names.add(parameter.name);
    }
  }
  return [...names];
}

/**
 * Validates `input` (each known parameter's raw text after DSN and environment fallback,
 * or undefined) against `driver`'s schema, applying defaults. Absent optional values are null.
 */
export function validateConfig(
  driver: DriverName,
  input: Readonly<Record<string, string | undefined>>,
  ctx: SchemaContext,
): ConfigResult {
  const shape = shapeOf(driver, ctx);
  const result = z.object(shape).safeParse(input);
  if (!result.success) {
    const issues = result.error.issues.map((issue): ConfigIssue => {
      const key = String(issue.path[0] ?? "");
      return { key, missing: input[key] === undefined, message: issue.message };
    });
    return { ok: false, issues };
  }
  const config: Record<string, unknown> = {};
  for (const key of Object.keys(shape)) config[key] = result.data[key] ?? null;
  return { ok: true, config };
}
