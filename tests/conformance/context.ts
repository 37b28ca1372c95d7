/**
 * A {@link DriverContext} for tests: a run directory and state directory in a temp
 * dir, and an in-memory journal of what the driver recorded and forgot, so a test
 * can assert that everything recorded was forgotten after `close()`.
 *
 * @module
 */

import type { DriverContext, ResourceRecord } from "../../drivers/contract.ts";

/** A test context plus what the driver did with it. */
export interface TestContext extends DriverContext {
  /** The temp dir holding `runDir` (and `stateDir` unless one was given). */
  readonly root: string;
  /** Resources recorded and not yet forgotten, keyed by `kind:id`. */
  readonly live: Map<string, ResourceRecord>;
  /** Every record call, in order. */
  readonly recorded: ResourceRecord[];
  /** Every forget call, in order. */
  readonly forgotten: ResourceRecord[];
  /** Forget calls for resources that were never recorded (a driver bug). */
  readonly unmatchedForgets: ResourceRecord[];
  /** Warnings, deduplicated like the runner does. */
  readonly warnings: string[];
  /** Removes the temp dir (not a given state dir). */
  dispose(): Promise<void>;
}

/** Options for {@link createTestContext}. */
export interface TestContextOptions {
  /** Namespace; default a fresh `test-<random>`. */
  readonly namespace?: string;
  /** State directory to share between contexts (caches persist in it). */
  readonly stateDir?: string;
  /** Run ID; default a fresh random one. */
  readonly runId?: string;
}

/** Creates a context in a fresh temp dir. */
export async function createTestContext(options: TestContextOptions = {}): Promise<TestContext> {
  const root = await Deno.makeTempDir({ prefix: "pocketci-conformance-" });
  const runId = options.runId ?? `run-${crypto.randomUUID().slice(0, 8)}`;
  const runDir = `${root}/work/${runId}`;
  const stateDir = options.stateDir ?? `${root}/state`;
  await Deno.mkdir(runDir, { recursive: true });
  await Deno.mkdir(stateDir, { recursive: true });
  const live = new Map<string, ResourceRecord>();
  const recorded: ResourceRecord[] = [];
  const forgotten: ResourceRecord[] = [];
  const unmatchedForgets: ResourceRecord[] = [];
  const warnings: string[] = [];
  const key = (resource: ResourceRecord) => `${resource.kind}:${resource.id}`;
  return {
    namespace: options.namespace ?? `test-${crypto.randomUUID().slice(0, 8)}`,
    runId,
    runDir,
    stateDir,
    root,
    live,
    recorded,
    forgotten,
    unmatchedForgets,
    warnings,
    record(resource: ResourceRecord): Promise<void> {
      recorded.push(resource);
      live.set(key(resource), resource);
      return Promise.resolve();
    },
    forget(resource: ResourceRecord): Promise<void> {
      forgotten.push(resource);
      if (!live.delete(key(resource))) unmatchedForgets.push(resource);
      return Promise.resolve();
    },
    warn(message: string): void {
      if (!warnings.includes(message)) warnings.push(message);
    },
    async dispose(): Promise<void> {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
}
