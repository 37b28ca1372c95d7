/**
 * The Deno permissions of the k8s driver, read from the kubeconfig without loading the client:
 * net to the API servers it names (only those), read of the kubeconfig files and the files they
 * name (certificates, keys, token files), `run` of an exec credential plugin they name (and no
 * other program), and the environment (the client library reads it when it loads). Inside a
 * cluster: the service account files and the in-cluster API address.
 *
 * @module
 */

import type { PermissionNeed } from "../contract.ts";
import { kubeconfigPaths } from "./config.ts";

/** What the kubeconfig files name. */
export interface KubeconfigRefs {
  /** `host:port` of each server. */
  readonly servers: string[];
  /** Files named by the kubeconfig (made absolute against the file's directory). */
  readonly files: string[];
  /** Exec credential plugin commands. */
  readonly commands: string[];
}

function unquote(value: string): string {
  const v = value.trim().replace(/\s+#.*$/, "");
  return /^(["']).*\1$/.test(v) ? v.slice(1, -1) : v;
}

function hostPort(server: string): string | undefined {
  try {
    const url = new URL(server);
    const port = url.port || (url.protocol === "http:" ? "80" : "443");
    return `${url.hostname}:${port}`;
  } catch {
    return undefined;
  }
}

/** Reads what a kubeconfig text names (YAML or JSON; keys read line by line). */
export function kubeconfigRefs(text: string, dir: string): KubeconfigRefs {
  const refs: KubeconfigRefs = { servers: [], files: [], commands: [] };
  const abs = (p: string) => p.startsWith("/") ? p : `${dir}/${p}`;
  const pattern =
    /"?(server|certificate-authority|client-certificate|client-key|tokenFile|command)"?\s*:\s*("[^"]*"|'[^']*'|[^,\s}]+)/g;
  for (const m of text.matchAll(pattern)) {
    const value = unquote(m[2]);
    if (!value) continue;
    if (m[1] === "server") {
      const hp = hostPort(value);
      if (hp && !refs.servers.includes(hp)) refs.servers.push(hp);
    } else if (m[1] === "command") {
      if (!refs.commands.includes(value)) refs.commands.push(value);
    } else if (!refs.files.includes(abs(value))) refs.files.push(abs(value));
  }
  return refs;
}

/** The permissions for a resolved configuration. */
export function k8sPermissions(
  config: Readonly<Record<string, unknown>>,
  env: (name: string) => string | undefined = (n) => {
    try {
      return Deno.env.get(n);
    } catch {
      return undefined;
    }
  },
): PermissionNeed[] {
  const paths = kubeconfigPaths(
    typeof config.kubeconfig === "string" ? config.kubeconfig : undefined,
  );
  const servers: string[] = [];
  const files: string[] = [...paths];
  const commands: string[] = [];
  let found = false;
  for (const path of paths) {
    let text: string;
    try {
      text = Deno.readTextFileSync(path);
    } catch {
      continue;
    }
    found = true;
    const refs = kubeconfigRefs(text, path.replace(/\/[^/]*$/, "") || "/");
    for (const s of refs.servers) if (!servers.includes(s)) servers.push(s);
    for (const f of refs.files) if (!files.includes(f)) files.push(f);
    for (const c of refs.commands) if (!commands.includes(c)) commands.push(c);
  }
  const host = env("KUBERNETES_SERVICE_HOST");
  if (!found && host) {
    // In a cluster: the service account's token and CA, and the API's in-cluster address.
    servers.push(
      `${host.includes(":") ? `[${host}]` : host}:${env("KUBERNETES_SERVICE_PORT") ?? "443"}`,
    );
    files.push("/var/run/secrets/kubernetes.io/serviceaccount");
  }
  const needs: PermissionNeed[] = [
    {
      permission: "env",
      values: true,
      reason:
        "@kubernetes/client-node reads the environment when it loads (KUBECONFIG, HOME, proxies); the driver reads KUBERNETES_SERVICE_HOST/PORT",
    },
    {
      permission: "read",
      values: files,
      reason: "the kubeconfig and the certificate, key and token files it names",
    },
    {
      permission: "net",
      values: servers,
      reason:
        "the Kubernetes API server(s) the kubeconfig names (REST, logs, exec/attach WebSockets)",
    },
  ];
  if (commands.length > 0) {
    needs.push({
      permission: "run",
      values: commands,
      reason: "the exec credential plugin(s) the kubeconfig names",
    });
  }
  return needs;
}
