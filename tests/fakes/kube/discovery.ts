/**
 * Discovery documents of the fake API server (`/version`, `/api`, `/apis`, `/api/v1`): the
 * legacy (unaggregated) forms, which kubectl and client libraries fall back to.
 *
 * @module
 */

import type { KubeObject } from "./store.ts";

const VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/** The `APIResourceList` of `/api/v1` for the resources served. */
export function coreResources(): KubeObject {
  const r = (name: string, kind: string, namespaced: boolean, verbs = VERBS, short?: string[]) => ({
    name,
    singularName: name.includes("/") ? "" : kind.toLowerCase(),
    namespaced,
    kind,
    verbs,
    ...(short ? { shortNames: short } : {}),
  });
  return {
    kind: "APIResourceList",
    groupVersion: "v1",
    resources: [
      r("events", "Event", true, VERBS, ["ev"]),
      r("namespaces", "Namespace", false, [
        "create",
        "delete",
        "get",
        "list",
        "patch",
        "update",
        "watch",
      ], ["ns"]),
      r("persistentvolumeclaims", "PersistentVolumeClaim", true, VERBS, ["pvc"]),
      r("pods", "Pod", true, VERBS, ["po"]),
      r("pods/attach", "PodAttachOptions", true, ["create", "get"]),
      r("pods/exec", "PodExecOptions", true, ["create", "get"]),
      r("pods/log", "Pod", true, ["get"]),
      r("pods/status", "Pod", true, ["get", "patch", "update"]),
      r("services", "Service", true, VERBS, ["svc"]),
    ],
  };
}

/** `/version`. */
export function version(): KubeObject {
  return {
    major: "1",
    minor: "32",
    gitVersion: "v1.32.0-fake",
    gitCommit: "0000000000000000000000000000000000000000",
    gitTreeState: "clean",
    buildDate: "2026-01-01T00:00:00Z",
    goVersion: "go1.23",
    compiler: "gc",
    platform: "linux/amd64",
  };
}

/** `/api`. */
export function apiVersions(address: string): KubeObject {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: address }],
  };
}

/** `/apis`: no groups. */
export function apiGroups(): KubeObject {
  return { kind: "APIGroupList", apiVersion: "v1", groups: [] };
}

/** `/openapi/v3`: the index of group-version documents. */
export function openApiIndex(): KubeObject {
  return { paths: { "api/v1": { serverRelativeURL: "/openapi/v3/api/v1?hash=fake" } } };
}

/**
 * `/openapi/v3/api/v1`: just enough for kubectl to see that creating each served resource
 * takes `fieldValidation` (so it validates server-side and needs no schemas).
 */
export function openApiCoreV1(): KubeObject {
  const paths: KubeObject = {};
  for (
    const [plural, kind] of [
      ["pods", "Pod"],
      ["services", "Service"],
      ["persistentvolumeclaims", "PersistentVolumeClaim"],
    ]
  ) {
    const gvk = { group: "", version: "v1", kind };
    const params = [
      { name: "fieldManager", in: "query", schema: { type: "string", uniqueItems: true } },
      { name: "fieldValidation", in: "query", schema: { type: "string", uniqueItems: true } },
    ];
    paths[`/api/v1/namespaces/{namespace}/${plural}`] = {
      post: {
        operationId: `createCoreV1Namespaced${kind}`,
        parameters: params,
        responses: {},
        "x-kubernetes-action": "post",
        "x-kubernetes-group-version-kind": gvk,
      },
    };
    paths[`/api/v1/namespaces/{namespace}/${plural}/{name}`] = {
      patch: {
        operationId: `patchCoreV1Namespaced${kind}`,
        parameters: params,
        responses: {},
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": gvk,
      },
    };
  }
  paths["/api/v1/namespaces"] = {
    post: {
      operationId: "createCoreV1Namespace",
      parameters: [{ name: "fieldValidation", in: "query", schema: { type: "string" } }],
      responses: {},
      "x-kubernetes-action": "post",
      "x-kubernetes-group-version-kind": { group: "", version: "v1", kind: "Namespace" },
    },
  };
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes", version: "v1.32.0-fake" },
    paths,
    components: { schemas: {} },
  };
}
