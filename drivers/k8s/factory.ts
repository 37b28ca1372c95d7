/**
 * The k8s driver's registry entry. Light on purpose: `@kubernetes/client-node` loads only when
 * a driver is created.
 *
 * DSN: `k8s`, `k8s://NAMESPACE`, `k8s:namespace=ci,kubeconfig=/path,start_timeout=2m,
 * storage_class=fast,volume_size=5Gi,create_namespace=true`.
 *
 * @module
 */

import type {
  Driver,
  DriverContext,
  DriverFactory,
  DriverMaintenance,
  PermissionNeed,
  ResourceRecord,
} from "../contract.ts";
import { parseDuration } from "../../dsn/duration.ts";
import { K8S_CAPABILITIES } from "./capabilities.ts";
import { k8sPermissions } from "./permissions.ts";

function str(config: Readonly<Record<string, unknown>>, key: string): string | undefined {
  const v = config[key];
  return typeof v === "string" && v !== "" ? v : undefined;
}

/** The driver options a resolved configuration stands for. */
export function k8sOptions(
  config: Readonly<Record<string, unknown>>,
): import("./driver.ts").K8sOptions {
  const timeout = str(config, "start_timeout") ?? "5m";
  return {
    namespace: str(config, "namespace") ?? "default",
    createNamespace: config.create_namespace === true || config.create_namespace === "true",
    startTimeoutMs: parseDuration(timeout),
    claims: {
      storageClass: str(config, "storage_class"),
      size: str(config, "volume_size") ?? "1Gi",
      helperImage: "busybox:latest",
    },
  };
}

/** The k8s driver's factory. */
export const k8sFactory: DriverFactory = {
  name: "k8s",
  capabilities: () => K8S_CAPABILITIES,
  permissions: (config: Readonly<Record<string, unknown>>): PermissionNeed[] =>
    k8sPermissions(config),
  async create(config: Readonly<Record<string, unknown>>, context: DriverContext): Promise<Driver> {
    const [{ loadKubeTarget }, { openK8sDriver }] = await Promise.all([
      import("./config.ts"),
      import("./driver.ts"),
    ]);
    return await openK8sDriver(
      loadKubeTarget(str(config, "kubeconfig")),
      context,
      k8sOptions(config),
    );
  },
  maintenance(
    config: Readonly<Record<string, unknown>>,
    context: DriverContext,
  ): Promise<DriverMaintenance> {
    const withMaintenance = async <T>(action: (m: DriverMaintenance) => Promise<T>): Promise<T> => {
      const [{ loadKubeTarget }, { KubeHttp }, { K8sMaintenance }] = await Promise.all([
        import("./config.ts"),
        import("./http.ts"),
        import("./maintenance.ts"),
      ]);
      const target = loadKubeTarget(str(config, "kubeconfig"));
      const http = new KubeHttp(target.kc, target.server);
      try {
        return await action(
          new K8sMaintenance(http, target.server, k8sOptions(config).namespace, context.namespace),
        );
      } finally {
        await http.close();
      }
    };
    return Promise.resolve({
      listResources: (): Promise<ResourceRecord[]> => withMaintenance((m) => m.listResources()),
      removeResource: (resource: ResourceRecord): Promise<void> =>
        withMaintenance((m) => m.removeResource(resource)),
      cacheSizes: (caches: readonly ResourceRecord[]): Promise<ReadonlyMap<string, number>> =>
        withMaintenance((m) => m.cacheSizes!(caches)),
    });
  },
};
