/**
 * `size=auto` / `server_type=auto`: the machine size from the largest CPU and memory limits known
 * when the machine is provisioned, exactly as the driver tables say; and what each size holds, so
 * a task asking for more than its machine has fails with an error naming the parameter.
 *
 * @module
 */

/** CPU (cores) and memory (bytes) a machine is sized for. */
export interface Demand {
  /** Cores. */
  readonly cpu: number;
  /** Bytes. */
  readonly memoryBytes: number;
}

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

/** DigitalOcean's table, first match wins. */
export function digitalOceanSize(demand: Demand): string {
  const mem = demand.memoryBytes / MIB;
  if (mem > 8192 || demand.cpu > 4) return "s-8vcpu-16gb";
  if (mem > 4096 || demand.cpu > 2) return "s-4vcpu-8gb";
  if (mem > 2048 || demand.cpu > 1) return "s-2vcpu-4gb";
  if (mem > 1024) return "s-2vcpu-2gb";
  if (mem > 512) return "s-1vcpu-2gb";
  return "s-1vcpu-1gb";
}

/** Hetzner's table, first match wins. */
export function hetznerServerType(demand: Demand): string {
  const mem = demand.memoryBytes / MIB;
  if (mem > 16384 || demand.cpu > 8) return "cx53";
  if (mem > 8192 || demand.cpu > 4) return "cx43";
  if (mem > 4096 || demand.cpu > 2) return "cx33";
  return "cx23";
}

const CAPACITY: Readonly<Record<string, Demand>> = {
  "s-1vcpu-1gb": { cpu: 1, memoryBytes: 1 * GIB },
  "s-1vcpu-2gb": { cpu: 1, memoryBytes: 2 * GIB },
  "s-2vcpu-2gb": { cpu: 2, memoryBytes: 2 * GIB },
  "s-2vcpu-4gb": { cpu: 2, memoryBytes: 4 * GIB },
  "s-4vcpu-8gb": { cpu: 4, memoryBytes: 8 * GIB },
  "s-8vcpu-16gb": { cpu: 8, memoryBytes: 16 * GIB },
  cx23: { cpu: 2, memoryBytes: 4 * GIB },
  cx33: { cpu: 4, memoryBytes: 8 * GIB },
  cx43: { cpu: 8, memoryBytes: 16 * GIB },
  cx53: { cpu: 16, memoryBytes: 32 * GIB },
};

/** What a size holds, when it is one of the known slugs. */
export function capacityOf(size: string): Demand | undefined {
  return CAPACITY[size];
}

/** The larger of two demands, field by field. */
export function maxDemand(a: Demand, b: Demand): Demand {
  return { cpu: Math.max(a.cpu, b.cpu), memoryBytes: Math.max(a.memoryBytes, b.memoryBytes) };
}
