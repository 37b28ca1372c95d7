/**
 * Records every resource the docker driver creates through the run's context (so `gc` can find
 * what a killed run left) and forgets it once removed.
 *
 * @module
 */

import type { DriverContext, ResourceKind, ResourceRecord } from "../contract.ts";

/** Wraps `context.record`/`forget` with the run's namespace, ID and engine. */
export class ResourceTracker {
  readonly #context: DriverContext;
  readonly #engine: string;
  readonly #records = new Map<string, ResourceRecord>();

  /** Creates a tracker for one run on one engine (`engine` is its address, stored in each record). */
  constructor(context: DriverContext, engine: string) {
    this.#context = context;
    this.#engine = engine;
  }

  /** The run's namespace. */
  get namespace(): string {
    return this.#context.namespace;
  }

  /** The run's ID. */
  get runId(): string {
    return this.#context.runId;
  }

  /** Records a resource as soon as it exists. */
  async record(
    kind: ResourceKind,
    id: string,
    detail: Record<string, string> = {},
  ): Promise<ResourceRecord> {
    const record: ResourceRecord = {
      kind,
      id,
      driver: "docker",
      runId: this.runId,
      namespace: this.namespace,
      createdAt: new Date().toISOString(),
      detail: { engine: this.#engine, ...detail },
    };
    this.#records.set(`${kind}:${id}`, record);
    await this.#context.record(record);
    return record;
  }

  /** The record of a resource, if this run recorded it. */
  get(kind: ResourceKind, id: string): ResourceRecord | undefined {
    return this.#records.get(`${kind}:${id}`);
  }

  /** Forgets a removed resource. */
  async forget(kind: ResourceKind, id: string): Promise<void> {
    const record = this.#records.get(`${kind}:${id}`);
    if (!record) return;
    this.#records.delete(`${kind}:${id}`);
    await this.#context.forget(record);
  }
}
