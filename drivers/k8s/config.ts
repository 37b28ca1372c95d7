/**
 * Where the k8s driver's cluster is: the `kubeconfig` parameter (a path, or a colon-separated
 * list as `KUBECONFIG` holds, merged as kubectl merges: the first file to name a cluster, user,
 * context or the current context wins), else `~/.kube/config` (the DSN resolution already put
 * `KUBECONFIG` or that default into the parameter), else the in-cluster service account. A list
 * whose files are all missing, outside a cluster, is a one-line error naming them.
 *
 * @module
 */

import { existsSync } from "node:fs";
import "./quiet_node.ts";
import { type Cluster, type Context, KubeConfig, type User } from "@kubernetes/client-node";
import { DriverError } from "../contract.ts";

/** A loaded configuration and where it came from. */
export interface KubeTarget {
  /** The client configuration (current context selected). */
  readonly kc: KubeConfig;
  /** Where it came from, for messages (`/path/config`, `in-cluster service account`). */
  readonly source: string;
  /** The API server URL. */
  readonly server: string;
}

/** The files a `kubeconfig` value names (a colon-separated list; empty entries dropped). */
export function kubeconfigPaths(value: string | undefined): string[] {
  return (value ?? "").split(":").map((p) => p.trim()).filter((p) => p !== "");
}

function inCluster(env: (name: string) => string | undefined): boolean {
  return env("KUBERNETES_SERVICE_HOST") !== undefined &&
    existsSync("/var/run/secrets/kubernetes.io/serviceaccount/token");
}

/** Merges kubeconfig files as kubectl does (first definition of each name wins). */
export function mergeKubeconfigs(paths: readonly string[]): KubeConfig {
  const clusters = new Map<string, Cluster>();
  const users = new Map<string, User>();
  const contexts = new Map<string, Context>();
  let current: string | undefined;
  for (const path of paths) {
    const kc = new KubeConfig();
    try {
      kc.loadFromFile(path);
    } catch (error) {
      throw new DriverError(
        "invalid",
        `cannot read kubeconfig ${path}: ${
          (error as Error).message.split("\n")[0]
        }; fix the file or pass kubeconfig=PATH`,
      );
    }
    for (const c of kc.getClusters()) if (!clusters.has(c.name)) clusters.set(c.name, c);
    for (const u of kc.getUsers()) if (!users.has(u.name)) users.set(u.name, u);
    for (const c of kc.getContexts()) if (!contexts.has(c.name)) contexts.set(c.name, c);
    if (!current && kc.getCurrentContext()) current = kc.getCurrentContext();
  }
  const merged = new KubeConfig();
  merged.loadFromOptions({
    clusters: [...clusters.values()],
    users: [...users.values()],
    contexts: [...contexts.values()],
    currentContext: current ?? "",
  });
  return merged;
}

/** Resolves the configuration for a run (see the module comment for the order). */
export function loadKubeTarget(
  kubeconfig: string | undefined,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): KubeTarget {
  const listed = kubeconfigPaths(kubeconfig);
  const present = listed.filter((p) => existsSync(p));
  let kc: KubeConfig;
  let source: string;
  if (present.length > 0) {
    kc = mergeKubeconfigs(present);
    source = present.join(":");
  } else if (inCluster(env)) {
    kc = new KubeConfig();
    kc.loadFromCluster();
    source = "the in-cluster service account";
  } else {
    throw new DriverError(
      "unavailable",
      `no kubeconfig found (${
        listed.length ? `looked for ${listed.join(", ")}` : "none given"
      }) and not running inside a cluster; pass --driver=k8s:kubeconfig=PATH or set KUBECONFIG`,
    );
  }
  const context = kc.getCurrentContext();
  if (!context || !kc.getContextObject(context)) {
    throw new DriverError(
      "invalid",
      `kubeconfig ${source} has no current context${
        context ? ` (it names "${context}", which is not defined)` : ""
      }; run kubectl config use-context NAME`,
    );
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    throw new DriverError(
      "invalid",
      `kubeconfig ${source}: context "${context}" has no cluster with a server URL`,
    );
  }
  return { kc, source, server: cluster.server };
}
