/**
 * A run that provisions a machine and is meant to be killed with SIGKILL mid-way: it writes a
 * real run journal (as `pocketci run` does), creates the driver from its registry factory and
 * asks for a volume (which provisions the machine). Arguments: driver, state dir, namespace, run
 * ID, token. The API URL comes from the environment.
 *
 * @module
 */

import type { DriverContext } from "../../../drivers/contract.ts";
import { machineFactory } from "../../../drivers/machines/factory.ts";
import { processStartTime, RunJournal, runPaths } from "../../../runner/state.ts";

const [driver, stateDir, namespace, runId, token] = Deno.args;
const paths = runPaths(stateDir, runId, namespace);
const journal = await RunJournal.create(paths.journal, {
  runId,
  namespace,
  driver,
  pipeline: "pipeline.ts",
  process: { pid: Deno.pid, startTime: await processStartTime(Deno.pid) },
  startedAt: new Date().toISOString(),
});
await Deno.mkdir(paths.workDir, { recursive: true });
const context: DriverContext = {
  namespace,
  runId,
  runDir: paths.workDir,
  stateDir,
  record: (resource) => journal.record(resource),
  forget: (resource) => journal.forget(resource),
  warn: () => {},
};
const instance = await machineFactory(driver as "digitalocean" | "hetzner").create(
  { token },
  context,
);
await instance.createVolume({ name: "src", kind: "volume" });
// Keep running until killed.
await new Promise(() => {});
