/**
 * Translating a {@link TaskSpec} into a container create request: image entrypoint cleared unless
 * one is given, `/workspace` as the default working directory, relative working directories and
 * mount paths both resolved against it (never a mount against the final working directory), mounts, env, user, privileged, CPU and memory limits, labels and the run's network (joined
 * directly, or through a network holder's namespace).
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import type Docker from "dockerode";
import { posix } from "node:path";
import { DriverError, type TaskSpec } from "../contract.ts";
import { normalizeImage } from "./images.ts";
import { imageReferenceError } from "../../runner/image_ref.ts";

/** The default working directory of tasks and sandboxes. */
export const DEFAULT_WORKDIR = "/workspace";

/** The working directory a spec asks for: relative ones are relative to `/workspace`. */
export function resolveWorkDir(workDir: string | undefined): string {
  return posix.resolve(DEFAULT_WORKDIR, workDir ?? ".");
}

/** Checks the parts of a spec every container needs. */
export function validateSpec(spec: TaskSpec, what: "task" | "sandbox" | "service"): string {
  if (!spec.image) {
    throw new DriverError(
      "invalid",
      `${what} ${spec.name} has no image; the docker driver runs every ${what} in a container: set .image("...")`,
    );
  }
  // The runner checks first; this keeps a malformed reference out of engine request paths
  // (where `a//b` made the engine client crash the process) for any other caller too.
  const invalid = imageReferenceError(spec.image);
  if (invalid !== undefined) throw new DriverError("invalid", `${what} ${spec.name}: ${invalid}`);
  if (what === "task" && spec.command.length === 0) {
    throw new DriverError("invalid", `task ${spec.name} has no command`);
  }
  return normalizeImage(spec.image);
}

/** Where the pieces of a container come from. */
export interface ContainerPlan {
  /** Container name. */
  readonly name: string;
  /** The command to run (the spec's, or the sandbox's keep-alive). */
  readonly command: readonly string[];
  /** Labels. */
  readonly labels: Record<string, string>;
  /** The run's network. */
  readonly network: string;
  /** A network holder whose namespace the container joins instead of joining `network` itself. */
  readonly holder?: string;
  /** DNS aliases on the run's network (a sandbox is reachable by its name). */
  readonly aliases?: readonly string[];
  /** Host name inside the container. */
  readonly hostname?: string;
  /**
   * A service: the image's ENTRYPOINT, CMD and WORKDIR are kept unless the spec replaces them
   * (an empty command keeps the CMD), and `ports` are published on 127.0.0.1 (ephemeral ports).
   */
  readonly service?: { readonly ports: readonly number[] };
}

/** The create request for a task or sandbox container. */
export function containerOptions(
  spec: TaskSpec,
  plan: ContainerPlan,
): Docker.ContainerCreateOptions {
  const service = plan.service;
  const workDir = service && spec.workDir === undefined ? undefined : resolveWorkDir(spec.workDir);
  const seen = new Set<string>();
  const mounts = spec.mounts.map((m) => {
    // Relative to /workspace, not to workDir: mount(src, "src") + workDir("src") works in src.
    const target = posix.resolve(DEFAULT_WORKDIR, m.path);
    if (target === "/") {
      throw new DriverError("invalid", `volume ${m.volume.name} cannot be mounted at /`);
    }
    if (seen.has(target)) throw new DriverError("invalid", `two volumes are mounted at ${target}`);
    seen.add(target);
    return { Type: "volume" as const, Source: m.volume.id, Target: target };
  });
  const limits = spec.limits;
  const hostConfig: Docker.HostConfig = {
    Mounts: mounts,
    NetworkMode: plan.holder ? `container:${plan.holder}` : plan.network,
    // The engine's init (tini) as PID 1: SIGTERM reaches the command, and a command that kills
    // itself with a signal is not shielded by PID-1 signal semantics.
    Init: true,
    Privileged: spec.privileged === true,
  };
  if (limits?.cpu !== undefined) {
    if (!(limits.cpu > 0)) {
      throw new DriverError(
        "invalid",
        `cpu limit must be a positive number of cores, got ${limits.cpu}`,
      );
    }
    hostConfig.NanoCpus = Math.round(limits.cpu * 1e9);
  }
  if (limits?.memoryBytes !== undefined) {
    if (!(limits.memoryBytes >= 6 * 1024 * 1024)) {
      throw new DriverError(
        "invalid",
        `memory limit must be at least 6 MiB for docker, got ${limits.memoryBytes} bytes`,
      );
    }
    hostConfig.Memory = Math.floor(limits.memoryBytes);
    // No swap on top: a task over its limit is OOM-killed instead of crawling.
    hostConfig.MemorySwap = Math.floor(limits.memoryBytes);
  }
  const stdin = spec.stdin !== undefined;
  const options: Docker.ContainerCreateOptions & { platform?: string } = {
    name: plan.name,
    Image: normalizeImage(spec.image ?? ""),
    Cmd: service && plan.command.length === 0 ? undefined : [...plan.command],
    // [""] resets the image's ENTRYPOINT, so the command runs exactly as given; a service keeps it.
    Entrypoint: spec.entrypoint ? [...spec.entrypoint] : service ? undefined : [""],
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    WorkingDir: workDir,
    User: spec.user ?? "",
    Labels: plan.labels,
    Hostname: plan.hostname,
    AttachStdout: true,
    AttachStderr: true,
    AttachStdin: stdin,
    OpenStdin: stdin,
    StdinOnce: stdin,
    Tty: false,
    HostConfig: hostConfig,
  };
  if (plan.holder) {
    if (plan.aliases || plan.hostname) {
      throw new DriverError("invalid", "a container that joins a network holder has no own name");
    }
  } else {
    options.NetworkingConfig = {
      EndpointsConfig: {
        [plan.network]: { Aliases: plan.aliases ? [...plan.aliases] : undefined },
      },
    };
  }
  if (service && service.ports.length > 0) {
    options.ExposedPorts = Object.fromEntries(service.ports.map((port) => [`${port}/tcp`, {}]));
    // Only on the loopback interface: a published port never reaches the machine's network.
    hostConfig.PortBindings = Object.fromEntries(
      service.ports.map((port) => [`${port}/tcp`, [{ HostIp: "127.0.0.1", HostPort: "" }]]),
    );
  }
  if (spec.platform) options.platform = spec.platform;
  return options;
}
