/**
 * Run journals for gc tests.
 *
 * @module
 */

import type { ResourceRecord } from "../../drivers/contract.ts";
import { processStartTime } from "../../runner/state.ts";

/**
 * Writes the journal of a run whose runner is this test process (so gc sees the run as live),
 * recording `resources` as created and not yet removed.
 */
export async function liveJournal(
  stateDir: string,
  runId: string,
  namespace: string,
  driver: string,
  resources: readonly Partial<ResourceRecord>[] = [],
): Promise<void> {
  const header = {
    type: "run",
    version: 1,
    runId,
    namespace,
    driver,
    pipeline: "/nowhere/pipeline.ts",
    process: { pid: Deno.pid, startTime: await processStartTime(Deno.pid) },
    startedAt: new Date().toISOString(),
  };
  const lines = [header, ...resources.map((resource) => ({ type: "record", resource }))];
  await Deno.mkdir(`${stateDir}/runs`, { recursive: true });
  await Deno.writeTextFile(
    `${stateDir}/runs/${runId}.jsonl`,
    lines.map((line) => JSON.stringify(line) + "\n").join(""),
  );
}
