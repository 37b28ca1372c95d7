/**
 * `gc` access to a Docker engine: list everything a namespace owns (by label) and remove one
 * resource at a time. The caller decides what is dead; this module never removes a resource that
 * does not carry the namespace's label.
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import type Docker from "dockerode";
import {
  DriverError,
  type DriverMaintenance,
  type ResourceKind,
  type ResourceRecord,
} from "../contract.ts";
import type { Engine } from "./engine.ts";
import { describeAddress } from "./engine_address.ts";
import { LABEL } from "./labels.ts";
import { firstLine } from "./volumes.ts";

function statusCode(error: unknown): number | undefined {
  return (error as { statusCode?: number }).statusCode;
}

function iso(value: string | number | undefined): string | undefined {
  if (value === undefined) return undefined;
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** Maintenance for one namespace on one engine. */
export class DockerMaintenance implements DriverMaintenance {
  readonly #docker: Docker;
  readonly #namespace: string;
  readonly #engine: string;

  /** Binds to an engine and a namespace. */
  constructor(engine: Engine, namespace: string) {
    this.#docker = engine.docker;
    this.#namespace = namespace;
    this.#engine = describeAddress(engine.address);
  }

  /**
   * Containers, volumes, caches and networks labelled as PocketCI's and with the namespace,
   * each with the run of its label (`gc` removes those whose run is not live).
   */
  async listResources(): Promise<ResourceRecord[]> {
    const filters = {
      label: [`${LABEL.managed}=true`, `${LABEL.namespace}=${this.#namespace}`],
    };
    const [containers, volumes, networks] = await Promise.all([
      this.#docker.listContainers({ all: true, filters }),
      this.#docker.listVolumes({ filters }),
      this.#docker.listNetworks({ filters }),
    ]);
    const record = (
      kind: ResourceKind,
      id: string,
      labels: Record<string, string> | undefined,
      created: string | number | undefined,
      detail: Record<string, string>,
    ): ResourceRecord => ({
      kind,
      id,
      driver: "docker",
      runId: labels?.[LABEL.run],
      namespace: this.#namespace,
      createdAt: iso(created),
      detail: {
        engine: this.#engine,
        ...(labels?.[LABEL.kind] ? { role: labels[LABEL.kind] } : {}),
        ...(labels?.[LABEL.name] ? { name: labels[LABEL.name] } : {}),
        ...(labels?.[LABEL.key] ? { key: labels[LABEL.key] } : {}),
        ...(labels?.[LABEL.task] ? { task: labels[LABEL.task] } : {}),
        ...detail,
      },
    });
    return [
      ...containers.map((c) =>
        record("container", c.Id, c.Labels, c.Created, {
          container: (c.Names?.[0] ?? "").replace(/^\//, ""),
          state: c.State,
        })
      ),
      ...(volumes.Volumes ?? []).map((v) =>
        record(
          v.Labels?.[LABEL.kind] === "cache" ? "cache" : "volume",
          v.Name,
          v.Labels ?? undefined,
          (v as { CreatedAt?: string }).CreatedAt,
          {},
        )
      ),
      ...networks.map((n) => record("network", n.Name, n.Labels, n.Created, {})),
    ];
  }

  /** Cache volume sizes from the engine's disk usage report (`docker system df -v`). */
  async cacheSizes(caches: readonly ResourceRecord[]): Promise<ReadonlyMap<string, number>> {
    const wanted = new Set(caches.map((cache) => cache.id));
    const usage = await this.#docker.df() as {
      Volumes?: { Name: string; UsageData?: { Size?: number } }[];
    };
    const sizes = new Map<string, number>();
    for (const volume of usage.Volumes ?? []) {
      const size = volume.UsageData?.Size;
      if (wanted.has(volume.Name) && size !== undefined && size >= 0) sizes.set(volume.Name, size);
    }
    return sizes;
  }

  /** Removes one resource (containers by force; a volume's helper containers first). */
  async removeResource(resource: ResourceRecord): Promise<void> {
    const owned = (labels: Record<string, string> | null | undefined) =>
      labels?.[LABEL.namespace] === this.#namespace;
    try {
      switch (resource.kind) {
        case "container": {
          const container = this.#docker.getContainer(resource.id);
          if (!owned((await container.inspect()).Config.Labels)) throw this.#notOwned(resource);
          await container.remove({ force: true, v: false });
          return;
        }
        case "volume":
        case "cache": {
          const volume = this.#docker.getVolume(resource.id);
          if (!owned((await volume.inspect()).Labels)) throw this.#notOwned(resource);
          const users = await this.#docker.listContainers({
            all: true,
            filters: { volume: [resource.id] },
          });
          await Promise.all(
            users.filter((c) => owned(c.Labels) && c.Labels?.[LABEL.kind] === "helper").map((c) =>
              this.#docker.getContainer(c.Id).remove({ force: true })
            ),
          );
          await volume.remove({ force: true });
          return;
        }
        case "network": {
          const network = this.#docker.getNetwork(resource.id);
          const info = await network.inspect() as {
            Labels?: Record<string, string>;
            Containers?: Record<string, unknown>;
          };
          if (!owned(info.Labels)) throw this.#notOwned(resource);
          await Promise.all(
            Object.keys(info.Containers ?? {}).map((id) =>
              network.disconnect({ Container: id, Force: true })
            ),
          );
          await network.remove();
          return;
        }
        default:
          throw new DriverError(
            "invalid",
            `the docker driver does not manage ${resource.kind} resources`,
          );
      }
    } catch (error) {
      if (error instanceof DriverError) throw error;
      if (statusCode(error) === 404) return;
      throw new DriverError(
        "failed",
        `cannot remove ${resource.kind} ${resource.id}: ${firstLine(error)}`,
        { cause: error },
      );
    }
  }

  #notOwned(resource: ResourceRecord): DriverError {
    return new DriverError(
      "invalid",
      `${resource.kind} ${resource.id} does not carry the label ${LABEL.namespace}=${this.#namespace}; refusing to remove it`,
    );
  }
}
