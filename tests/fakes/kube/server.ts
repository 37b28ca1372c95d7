/**
 * The fake Kubernetes API server: HTTPS with its own CA, client-certificate and bearer-token
 * authentication, the core/v1 subset PocketCI's k8s driver uses (namespaces, pods with log,
 * exec, attach, PVCs, services, events), list/watch with selectors and resourceVersions, and
 * `Status` error bodies. Pods run on the local dockerd (see `pods.ts`). `startFakeKube()`
 * writes a kubeconfig for the tests and `close()` removes every container, volume and the
 * network it made.
 *
 * @module
 */

import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { Authenticator } from "./auth.ts";
import { makeClusterCerts } from "./certs.ts";
import {
  apiGroups,
  apiVersions,
  coreResources,
  openApiCoreV1,
  openApiIndex,
  version,
} from "./discovery.ts";
import { DockerApi } from "./docker_api.ts";
import { LogServer } from "./logs.ts";
import { PodRuntime } from "./pods.ts";
import { RemoteCommands } from "./remote_command.ts";
import { handlePortForward } from "./port_forward.ts";
import { rejectUpgrade } from "./websocket.ts";
import {
  type KubeObject,
  notFound,
  parseFieldSelector,
  parseLabelSelector,
  StatusError,
  Store,
} from "./store.ts";

/** A running fake cluster. */
export interface FakeKube {
  /** `https://127.0.0.1:PORT`. */
  readonly url: string;
  /** A kubeconfig with a client-certificate context (current) and a token context. */
  readonly kubeconfig: string;
  /** The bearer token the `token` user of the kubeconfig has. */
  readonly token: string;
  /** The cluster's CA certificate (PEM). */
  readonly ca: string;
  /** The object store (tests read it directly). */
  readonly store: Store;
  /** The docker network pods run on. */
  readonly network: string;
  /** Every request the server got, as `METHOD path?query` (tests check what a client did). */
  readonly requests: string[];
  /** Pauses or resumes scheduling (paused: new pods stay Pending, as with no scheduler). */
  pauseScheduler(paused: boolean): void;
  /** Cuts every open `pods/log` follow stream; returns how many were cut. */
  dropLogStreams(): number;
  /** How many follow streams are open. */
  openLogStreams(): number;
  /** Stops the server and removes everything it made. */
  close(): Promise<void>;
  /**
   * Removes the cluster's containers, volumes, network and files at once, synchronously (for an
   * `unload` handler when a filtered test run never reached `close()`).
   */
  removeSync(): void;
}

const LIST_KIND: Record<string, string> = {
  pods: "PodList",
  persistentvolumeclaims: "PersistentVolumeClaimList",
  services: "ServiceList",
  events: "EventList",
  namespaces: "NamespaceList",
};
const KIND: Record<string, string> = {
  pods: "Pod",
  persistentvolumeclaims: "PersistentVolumeClaim",
  services: "Service",
  events: "Event",
  namespaces: "Namespace",
};
const STORAGE_CLASSES = ["standard"];

function stripType(o: KubeObject): KubeObject {
  const { kind: _k, apiVersion: _a, ...rest } = o;
  return rest;
}

function withType(resource: string, o: KubeObject): KubeObject {
  return { kind: KIND[resource], apiVersion: "v1", ...stripType(o) };
}

function mergePatch(target: KubeObject, patch: KubeObject): KubeObject {
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete target[k];
    else if (typeof v === "object" && !Array.isArray(v) && typeof target[k] === "object") {
      target[k] = mergePatch(target[k] ?? {}, v);
    } else target[k] = v;
  }
  return target;
}

function readBody(req: IncomingMessage): Promise<KubeObject | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    req.on("data", (c: Uint8Array) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      if (!text.trim()) return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new StatusError(400, "BadRequest", "the request body is not valid JSON"));
      }
    });
    req.on("error", reject);
  });
}

/** Removes a cluster's containers, volumes, network (and directory) with the docker CLI. */
function removeClusterSync(cluster: string, network: string, dir: string | undefined): void {
  const docker = (args: string[]) =>
    new Deno.Command("docker", { args, stdout: "piped", stderr: "null" }).outputSync();
  const ids = (args: string[]) =>
    new TextDecoder().decode(docker(args).stdout).split("\n").filter((l) => l.trim());
  const label = `label=fake-kube.cluster=${cluster}`;
  const containers = ids(["ps", "-aq", "--filter", label]);
  if (containers.length) docker(["rm", "-f", ...containers]);
  const volumes = ids(["volume", "ls", "-q", "--filter", label]);
  if (volumes.length) docker(["volume", "rm", "-f", ...volumes]);
  docker(["network", "rm", network]);
  if (dir) {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* gone */ }
  }
}

/** Starts a fake cluster on 127.0.0.1 with a random port; pods need the local dockerd. */
export async function startFakeKube(options: { readonly dir?: string } = {}): Promise<FakeKube> {
  const certs = await makeClusterCerts();
  const token = crypto.randomUUID().replace(/-/g, "");
  const auth = new Authenticator(certs.ca, new Map([[token, "token-user"]]));
  const cluster = crypto.randomUUID().slice(0, 8);
  const store = new Store();
  const docker = new DockerApi();
  const pods = new PodRuntime(docker, store, cluster);
  await pods.start();
  const logs = new LogServer(docker, store, pods);
  const remote = new RemoteCommands(store, pods);
  const requests: string[] = [];
  const pending = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>) => {
    pending.add(p);
    p.finally(() => pending.delete(p)).catch(() => {});
    return p;
  };
  for (const ns of ["default", "kube-system", "kube-public"]) {
    store.create("namespaces", {
      kind: "Namespace",
      apiVersion: "v1",
      metadata: { name: ns, labels: { "kubernetes.io/metadata.name": ns } },
      spec: { finalizers: ["kubernetes"] },
      status: { phase: "Active" },
    });
  }
  let address = "";

  const send = (res: ServerResponse, code: number, body: KubeObject) => {
    const text = JSON.stringify(body);
    res.writeHead(code, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(text),
      "Audit-Id": crypto.randomUUID(),
    });
    res.end(text);
  };

  const requireNamespace = (ns: string) => {
    if (!store.get("namespaces", undefined, ns)) throw notFound("namespaces", ns);
  };

  const listOrWatch = (
    resource: string,
    ns: string | undefined,
    query: URLSearchParams,
    res: ServerResponse,
  ) => {
    const labels = parseLabelSelector(query.get("labelSelector"));
    const fields = parseFieldSelector(query.get("fieldSelector"));
    const match = (o: KubeObject) => labels(o.metadata.labels ?? {}) && fields(o);
    if (query.get("watch") === "true" || query.get("watch") === "1") {
      const unwatch = store.watch(
        resource,
        ns,
        match,
        query.get("resourceVersion"),
        (event) => {
          res.write(
            JSON.stringify({ type: event.type, object: withType(resource, event.object) }) + "\n",
          );
        },
      );
      res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
      res.flushHeaders?.();
      const timeout = Number(query.get("timeoutSeconds") ?? 1800);
      const timer = setTimeout(() => res.end(), timeout * 1000);
      res.on("close", () => {
        clearTimeout(timer);
        unwatch();
      });
      return;
    }
    send(res, 200, {
      kind: LIST_KIND[resource],
      apiVersion: "v1",
      metadata: { resourceVersion: store.resourceVersion },
      items: store.list(resource, ns, match).map(stripType),
    });
  };

  const createPvc = async (ns: string, body: KubeObject): Promise<KubeObject> => {
    body.metadata.namespace = ns;
    body.spec ??= {};
    body.spec.accessModes ??= ["ReadWriteOnce"];
    body.spec.volumeMode ??= "Filesystem";
    const cls = body.spec.storageClassName ?? "standard";
    body.spec.storageClassName = cls;
    const size = body.spec.resources?.requests?.storage;
    if (!size) {
      throw new StatusError(
        422,
        "Invalid",
        `PersistentVolumeClaim "${body.metadata.name}" is invalid: spec.resources[storage]: Required value`,
      );
    }
    body.metadata.finalizers = ["kubernetes.io/pvc-protection"];
    const known = STORAGE_CLASSES.includes(cls);
    body.status = known
      ? { phase: "Bound", accessModes: body.spec.accessModes, capacity: { storage: size } }
      : { phase: "Pending" };
    const created = store.create("persistentvolumeclaims", body);
    if (known) {
      await docker.json("POST", "/volumes/create", {
        Name: pods.claimVolume(ns, body.metadata.name, created.metadata.uid),
        Labels: { "fake-kube.cluster": cluster },
      });
      return store.update("persistentvolumeclaims", ns, body.metadata.name, (o) => {
        o.spec.volumeName = `pvc-${o.metadata.uid}`;
      });
    }
    pods.event(
      { ...created, kind: "PersistentVolumeClaim" },
      "Warning",
      "ProvisioningFailed",
      `storageclass.storage.k8s.io "${cls}" not found`,
      "persistentvolume-controller",
    );
    return created;
  };

  const deletePvc = (ns: string, name: string): KubeObject => {
    const marked = store.update("persistentvolumeclaims", ns, name, (o) => {
      o.metadata.deletionTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, "Z");
      o.metadata.deletionGracePeriodSeconds = 0;
    });
    track((async () => {
      // The pvc-protection finalizer: the claim stays while a pod that has not ended uses it;
      // its docker volume goes once no container holds it any more.
      for (let i = 0; i < 3000 && pods.claimInUse(ns, name); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      try {
        const gone = store.remove("persistentvolumeclaims", ns, name);
        pods.orphanVolumes.add(pods.claimVolume(ns, name, gone.metadata.uid));
        await pods.sweepOrphans();
      } catch { /* gone */ }
    })());
    return marked;
  };

  const createService = (ns: string, body: KubeObject): KubeObject => {
    body.metadata.namespace = ns;
    body.spec ??= {};
    body.spec.type ??= "ClusterIP";
    const n = Math.floor(Math.random() * 65000) + 1;
    body.spec.clusterIP ??= `10.96.${n >> 8}.${n & 255}`;
    body.spec.clusterIPs = [body.spec.clusterIP];
    body.spec.sessionAffinity ??= "None";
    for (const p of body.spec.ports ?? []) {
      p.protocol ??= "TCP";
      p.targetPort ??= p.port;
    }
    body.status = { loadBalancer: {} };
    return store.create("services", body);
  };

  const create = async (resource: string, ns: string, body: KubeObject): Promise<KubeObject> => {
    if (!body?.metadata) throw new StatusError(400, "BadRequest", "the object has no metadata");
    if (body.kind && body.kind !== KIND[resource]) {
      throw new StatusError(
        400,
        "BadRequest",
        `the API version in the data (${body.apiVersion}) does not match the expected API version (v1)`,
      );
    }
    requireNamespace(ns);
    body.metadata.namespace = ns;
    if (resource === "pods") {
      const pod = pods.admit(body, ns);
      const created = store.create("pods", pod);
      pods.run(created);
      return created;
    }
    if (resource === "persistentvolumeclaims") return await createPvc(ns, body);
    if (resource === "services") return createService(ns, body);
    if (resource === "events") return store.create("events", body);
    throw new StatusError(405, "MethodNotAllowed", "the server does not allow this method");
  };

  const deleteOne = (resource: string, ns: string, name: string, grace?: number): KubeObject => {
    if (resource === "pods") return pods.delete(ns, name, grace);
    if (resource === "persistentvolumeclaims") return deletePvc(ns, name);
    return store.remove(resource, ns, name);
  };

  const graceOf = async (req: IncomingMessage, query: URLSearchParams) => {
    const body = await readBody(req).catch(() => undefined);
    const q = query.get("gracePeriodSeconds");
    if (q !== null) return Number(q);
    if (typeof body?.gracePeriodSeconds === "number") return body.gracePeriodSeconds;
    return undefined;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "https://fake");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const query = url.searchParams;
    const method = req.method ?? "GET";
    requests.push(`${method} ${path}${url.search}`);
    if (!auth.authenticate(req)) {
      send(res, 401, {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: "Unauthorized",
        reason: "Unauthorized",
        code: 401,
      });
      return;
    }
    if (path === "/version") return send(res, 200, version());
    if (path === "/api") return send(res, 200, apiVersions(address));
    if (path === "/apis") return send(res, 200, apiGroups());
    if (path === "/api/v1") return send(res, 200, coreResources());
    if (path === "/openapi/v3") return send(res, 200, openApiIndex());
    if (path === "/openapi/v3/api/v1") return send(res, 200, openApiCoreV1());
    const seg = path.split("/").slice(1);
    if (seg[0] !== "api" || seg[1] !== "v1") {
      throw new StatusError(404, "NotFound", "the server could not find the requested resource");
    }
    const rest = seg.slice(2);
    // Cluster-wide lists: /api/v1/{resource}
    if (rest.length === 1 && rest[0] !== "namespaces") {
      if (!LIST_KIND[rest[0]] || method !== "GET") throw notFound(rest[0], "");
      return listOrWatch(rest[0], undefined, query, res);
    }
    if (rest[0] !== "namespaces") throw notFound(rest[0], "");
    if (rest.length === 1) {
      if (method === "GET") return listOrWatch("namespaces", undefined, query, res);
      if (method === "POST") {
        const body = await readBody(req);
        if (!body?.metadata?.name) {
          throw new StatusError(422, "Invalid", "metadata.name: Required value");
        }
        body.kind = "Namespace";
        body.apiVersion = "v1";
        body.metadata.labels = {
          ...body.metadata.labels,
          "kubernetes.io/metadata.name": body.metadata.name,
        };
        body.spec = { finalizers: ["kubernetes"] };
        body.status = { phase: "Active" };
        return send(res, 201, store.create("namespaces", body));
      }
    }
    const ns = rest[1];
    if (rest.length === 2) {
      if (method === "GET") {
        return send(res, 200, withType("namespaces", store.must("namespaces", undefined, ns)));
      }
      if (method === "DELETE") {
        const o = store.must("namespaces", undefined, ns);
        for (const r of ["pods", "persistentvolumeclaims", "services", "events"]) {
          for (const item of store.list(r, ns)) {
            try {
              deleteOne(r, ns, item.metadata.name, 0);
            } catch { /* gone */ }
          }
        }
        store.remove("namespaces", undefined, ns);
        return send(res, 200, withType("namespaces", o));
      }
    }
    const resource = rest[2];
    if (!LIST_KIND[resource] || resource === "namespaces") throw notFound(resource ?? "", "");
    if (rest.length === 3) {
      if (method === "GET") return listOrWatch(resource, ns, query, res);
      if (method === "POST") {
        const created = await create(resource, ns, (await readBody(req))!);
        return send(res, 201, withType(resource, created));
      }
      if (method === "DELETE") {
        const grace = await graceOf(req, query);
        const labels = parseLabelSelector(query.get("labelSelector"));
        const fields = parseFieldSelector(query.get("fieldSelector"));
        const items = store.list(resource, ns, (o) => labels(o.metadata.labels ?? {}) && fields(o))
          .map((o) => stripType(deleteOne(resource, ns, o.metadata.name, grace)));
        return send(res, 200, {
          kind: LIST_KIND[resource],
          apiVersion: "v1",
          metadata: { resourceVersion: store.resourceVersion },
          items,
        });
      }
    }
    const name = rest[3];
    if (rest.length === 4) {
      if (method === "GET") {
        return send(res, 200, withType(resource, store.must(resource, ns, name)));
      }
      if (method === "DELETE") {
        const grace = await graceOf(req, query);
        store.must(resource, ns, name);
        return send(res, 200, withType(resource, deleteOne(resource, ns, name, grace)));
      }
      if (method === "PATCH" || method === "PUT") {
        const body = (await readBody(req)) ?? {};
        const updated = store.update(resource, ns, name, (o) => {
          if (method === "PUT") {
            o.metadata.labels = body.metadata?.labels ?? o.metadata.labels;
            o.metadata.annotations = body.metadata?.annotations ?? o.metadata.annotations;
          } else {
            mergePatch(o.metadata, body.metadata ?? {});
          }
        });
        return send(res, 200, withType(resource, updated));
      }
    }
    if (rest.length === 5 && resource === "pods") {
      if (rest[4] === "log" && method === "GET") return await logs.serve(ns, name, query, res);
      if (rest[4] === "status" && method === "GET") {
        return send(res, 200, withType("pods", store.must("pods", ns, name)));
      }
      if (rest[4] === "exec" || rest[4] === "attach") {
        throw new StatusError(
          400,
          "BadRequest",
          "Upgrade request required",
        );
      }
    }
    throw new StatusError(
      405,
      "MethodNotAllowed",
      "the server does not allow this method on the requested resource",
    );
  };

  const server = https.createServer({
    key: certs.serverKey,
    cert: certs.serverCert,
    ca: certs.ca,
    requestCert: true,
    rejectUnauthorized: false,
  }, (req, res) => {
    track(
      handle(req, res).catch((error) => {
        const status = error instanceof StatusError ? error : new StatusError(
          500,
          "InternalError",
          `Internal error occurred: ${(error as Error).message}`,
        );
        if (!res.headersSent) send(res, status.code, status.toStatus());
        else res.end();
      }),
    );
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Uint8Array) => {
    const url = new URL(req.url ?? "/", "https://fake");
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    const unauthorized = () =>
      rejectUpgrade(
        socket,
        401,
        JSON.stringify(new StatusError(401, "Unauthorized", "Unauthorized").toStatus()),
      );
    if (!auth.authenticate(req)) return unauthorized();
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/(exec|attach|portforward)$/
      .exec(url.pathname);
    if (!m) {
      return rejectUpgrade(socket, 404, JSON.stringify(notFound("", url.pathname).toStatus()));
    }
    const refuse = (error: unknown) => {
      const status = error instanceof StatusError
        ? error
        : new StatusError(500, "InternalError", (error as Error).message);
      rejectUpgrade(socket, status.code, JSON.stringify(status.toStatus()));
    };
    if (m[3] === "portforward") {
      try {
        void handlePortForward(store, m[1], m[2], url.searchParams, req, socket, head).catch(
          refuse,
        );
      } catch (error) {
        refuse(error);
      }
      return;
    }
    try {
      remote.handle(m[3] as "exec" | "attach", m[1], m[2], url.searchParams, req, socket, head);
    } catch (error) {
      const status = error instanceof StatusError
        ? error
        : new StatusError(500, "InternalError", (error as Error).message);
      rejectUpgrade(socket, status.code, JSON.stringify(status.toStatus()));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as { port: number }).port;
  address = `127.0.0.1:${port}`;
  const url = `https://127.0.0.1:${port}`;
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "fake-kube-" });
  const ownDir = options.dir === undefined;
  const kubeconfig = `${dir}/kubeconfig`;
  const b64 = (s: string) => btoa(s);
  await Deno.writeTextFile(
    kubeconfig,
    JSON.stringify(
      {
        apiVersion: "v1",
        kind: "Config",
        clusters: [{
          name: "fake",
          cluster: { server: url, "certificate-authority-data": b64(certs.ca) },
        }],
        users: [
          {
            name: "cert",
            user: {
              "client-certificate-data": b64(certs.clientCert),
              "client-key-data": b64(certs.clientKey),
            },
          },
          { name: "token", user: { token } },
        ],
        contexts: [
          { name: "fake", context: { cluster: "fake", user: "cert" } },
          { name: "fake-token", context: { cluster: "fake", user: "token" } },
        ],
        "current-context": "fake",
        preferences: {},
      },
      null,
      2,
    ),
  );
  return {
    url,
    kubeconfig,
    token,
    ca: certs.ca,
    store,
    network: pods.network,
    requests,
    pauseScheduler: (paused: boolean) => {
      pods.schedulerPaused = paused;
    },
    dropLogStreams: () => logs.dropAll(),
    openLogStreams: () => logs.openStreams,
    removeSync: () => removeClusterSync(cluster, pods.network, ownDir ? dir : undefined),
    async close() {
      await remote.close();
      logs.dropAll();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.allSettled([...pending]);
      await pods.close();
      docker.close();
      if (ownDir) await Deno.remove(dir, { recursive: true });
    },
  };
}
