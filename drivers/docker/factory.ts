/**
 * The docker driver's registry entry. Light on purpose: dockerode and ssh2 load only when a
 * driver is created.
 *
 * DSN: `docker`, `docker:host=unix:///var/run/docker.sock`, `docker:host=tcp://host:2375`,
 * `docker:host=ssh://user@host:22`. Without `host`, `DOCKER_HOST`, then the local socket.
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
import { DOCKER_CAPABILITIES } from "./capabilities.ts";
import { currentPermissionEnv, dockerPermissions } from "./permissions.ts";

function hostOf(config: Readonly<Record<string, unknown>>): string | undefined {
  return typeof config.host === "string" && config.host !== "" ? config.host : undefined;
}

async function open(
  config: Readonly<Record<string, unknown>>,
): Promise<import("./engine.ts").Engine> {
  const [{ openEngine }, { readEngineEnv, resolveEngineAddress }] = await Promise.all([
    import("./engine.ts"),
    import("./engine_address.ts"),
  ]);
  return await openEngine(resolveEngineAddress(hostOf(config), readEngineEnv()));
}

/** The docker driver's factory. */
export const dockerFactory: DriverFactory = {
  name: "docker",
  capabilities: () => DOCKER_CAPABILITIES,
  permissions: (config: Readonly<Record<string, unknown>>): PermissionNeed[] =>
    dockerPermissions(config, currentPermissionEnv()),
  async create(config: Readonly<Record<string, unknown>>, context: DriverContext): Promise<Driver> {
    const { createDockerDriver } = await import("./create.ts");
    return await createDockerDriver(context, {
      host: hostOf(config),
      hostSource: "the DSN's host parameter",
    });
  },
  maintenance(
    config: Readonly<Record<string, unknown>>,
    context: DriverContext,
  ): Promise<DriverMaintenance> {
    // Each call opens and releases the engine, so an SSH connection never outlives the call.
    const withMaintenance = async <T>(action: (m: DriverMaintenance) => Promise<T>): Promise<T> => {
      const engine = await open(config);
      try {
        const { DockerMaintenance } = await import("./maintenance.ts");
        return await action(new DockerMaintenance(engine, context.namespace));
      } finally {
        await engine.close();
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
