/**
 * Translating a {@link TaskSpec} into a bare Pod: `restartPolicy: Never`, the image's entrypoint
 * cleared (`command` set, argv as an array, never through a shell), `/workspace` as the default
 * working directory with relative mounts under it (as on docker), claims as volumes with pod
 * affinity between pods sharing a ReadWriteOnce claim, requests = limits from the DSL's cpu and
 * memory, `securityContext` from `user` (numeric only) and `privileged`, `imagePullPolicy` from
 * the pull policy.
 *
 * @module
 */

import { posix } from "node:path";
import type { V1Pod, V1SecurityContext } from "@kubernetes/client-node";
import { DriverError, type PullPolicy, type TaskSpec } from "../contract.ts";
import { DEFAULT_WORKDIR, resolveWorkDir } from "../docker/container_spec.ts";
import { shortHash } from "./names.ts";

/** The container name in every pod. */
export const CONTAINER = "main";

/** The label marking pods that mount a claim (one key per claim), for pod affinity. */
export function claimLabel(claim: string): string {
  return `claim.pocketci.io/${shortHash(claim)}`;
}

/** How to build one pod. */
export interface PodPlan {
  /** The pod's name. */
  readonly name: string;
  /** Kubernetes namespace. */
  readonly namespace: string;
  /** Labels. */
  readonly labels: Record<string, string>;
  /** Annotations. */
  readonly annotations: Record<string, string>;
  /** Replaces the spec's command (sandboxes' keep-alive, helpers). */
  readonly command?: readonly string[];
  /** Whether the claims are ReadWriteOnce (then pods sharing one are scheduled together). */
  readonly readWriteOnce: boolean;
  /** The run's services: name → pod IP, resolvable from this pod (`hostAliases`). */
  readonly services?: ReadonlyMap<string, string>;
  /**
   * A service: the image's ENTRYPOINT and CMD run unless replaced (`entrypoint` replaces the
   * former, `command` the latter), unlike a task's, whose entrypoint is cleared.
   */
  readonly service?: boolean;
  /** `activeDeadlineSeconds`: the kubelet kills the pod after it (a safety net for timeouts). */
  readonly deadlineSeconds?: number;
}

/** `user` as a securityContext: numeric `uid` or `uid:gid`; a name is refused. */
export function securityContextFor(spec: TaskSpec): V1SecurityContext | undefined {
  const sc: V1SecurityContext = {};
  if (spec.user !== undefined && spec.user !== "") {
    const m = /^(\d+)(?::(\d+))?$/.exec(spec.user);
    if (!m) {
      throw new DriverError(
        "invalid",
        `task ${spec.name}: user "${spec.user}" needs a name lookup in the image, which Kubernetes does not do; give a numeric uid such as .user("1000") or "1000:1000"`,
      );
    }
    sc.runAsUser = Number(m[1]);
    if (m[2] !== undefined) sc.runAsGroup = Number(m[2]);
  }
  if (spec.privileged) sc.privileged = true;
  return Object.keys(sc).length ? sc : undefined;
}

/** The Kubernetes image pull policy for the DSL's. */
export function pullPolicy(pull: PullPolicy | undefined): "IfNotPresent" | "Always" | "Never" {
  return pull === "always" ? "Always" : pull === "never" ? "Never" : "IfNotPresent";
}

/** CPU cores and memory bytes as Kubernetes quantities (`500m`, `268435456`). */
export function resourcesFor(spec: TaskSpec): Record<string, string> | undefined {
  const limits: Record<string, string> = {};
  const cpu = spec.limits?.cpu;
  if (cpu !== undefined) {
    if (!(cpu > 0)) {
      throw new DriverError("invalid", `cpu limit must be a positive number of cores, got ${cpu}`);
    }
    limits.cpu = `${Math.max(1, Math.round(cpu * 1000))}m`;
  }
  const memory = spec.limits?.memoryBytes;
  if (memory !== undefined) {
    if (!(memory >= 4 * 1024 * 1024)) {
      throw new DriverError("invalid", `memory limit must be at least 4 MiB, got ${memory} bytes`);
    }
    limits.memory = String(Math.floor(memory));
  }
  return Object.keys(limits).length ? limits : undefined;
}

/** The pod for a task (or a sandbox/helper with `plan.command`). */
export function podFor(spec: TaskSpec, plan: PodPlan): V1Pod {
  const volumes: NonNullable<V1Pod["spec"]>["volumes"] = [];
  const volumeMounts: { name: string; mountPath: string }[] = [];
  const claims = new Map<string, string>();
  const seen = new Set<string>();
  for (const m of spec.mounts) {
    const target = posix.resolve(DEFAULT_WORKDIR, m.path);
    if (target === "/") {
      throw new DriverError("invalid", `volume ${m.volume.name} cannot be mounted at /`);
    }
    if (seen.has(target)) throw new DriverError("invalid", `two volumes are mounted at ${target}`);
    seen.add(target);
    let volName = claims.get(m.volume.id);
    if (!volName) {
      volName = `v${claims.size}`;
      claims.set(m.volume.id, volName);
      volumes.push({ name: volName, persistentVolumeClaim: { claimName: m.volume.id } });
    }
    volumeMounts.push({ name: volName, mountPath: target });
  }
  const labels = { ...plan.labels };
  for (const claim of claims.keys()) labels[claimLabel(claim)] = "true";
  const affinityTerms = plan.readWriteOnce
    ? [...claims.keys()].map((claim) => ({
      labelSelector: { matchExpressions: [{ key: claimLabel(claim), operator: "Exists" }] },
      topologyKey: "kubernetes.io/hostname",
    }))
    : [];
  const command = plan.command ?? spec.command;
  const resources = resourcesFor(spec);
  const securityContext = securityContextFor(spec);
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: plan.name,
      namespace: plan.namespace,
      labels,
      annotations: plan.annotations,
    },
    spec: {
      restartPolicy: "Never",
      // The pause process is PID 1, not the command: a signal the command sends itself works
      // and SIGTERM on deletion reaches it with its default action, as on docker (with init).
      shareProcessNamespace: true,
      enableServiceLinks: false,
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 30,
      ...(plan.deadlineSeconds !== undefined
        ? { activeDeadlineSeconds: plan.deadlineSeconds }
        : {}),
      ...(plan.services && plan.services.size > 0
        ? {
          hostAliases: [...plan.services].map(([hostname, ip]) => ({ ip, hostnames: [hostname] })),
        }
        : {}),
      ...(affinityTerms.length
        ? {
          affinity: {
            podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: affinityTerms },
          },
        }
        : {}),
      containers: [{
        name: CONTAINER,
        image: spec.image,
        imagePullPolicy: pullPolicy(spec.pull),
        ...(plan.service
          ? {
            ...(spec.entrypoint ? { command: [...spec.entrypoint] } : {}),
            ...(command.length > 0 ? { args: [...command] } : {}),
          }
          : spec.entrypoint
          ? { command: [...spec.entrypoint], args: [...command] }
          : { command: [...command], args: [] }),
        env: Object.entries(spec.env).map(([name, value]) => ({ name, value })),
        ...(plan.service && spec.workDir === undefined
          ? {}
          : { workingDir: resolveWorkDir(spec.workDir) }),
        ...(resources ? { resources: { requests: resources, limits: resources } } : {}),
        ...(securityContext ? { securityContext } : {}),
        ...(spec.stdin !== undefined && plan.command === undefined
          ? { stdin: true, stdinOnce: true }
          : {}),
        volumeMounts,
      }],
      volumes,
    },
  };
}
