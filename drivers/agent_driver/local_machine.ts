/**
 * The host as the agent driver's machine: the agent runs as a local Deno process on a unix
 * socket and volumes and task directories live under the run directory. Used to run the
 * driver conformance suite without a hypervisor; the vz and QEMU-backed machines differ
 * only in how the agent is reached.
 *
 * @module
 */

import type { DriverContext, ResourceRecord } from "../contract.ts";
import { startLocalAgent } from "../agent_client/local_agent.ts";
import type { AgentMachine } from "./machine.ts";

/** Starts an agent process for the run of `context`. */
export async function bootLocalMachine(context: DriverContext): Promise<AgentMachine> {
  const agent = await startLocalAgent();
  const record: ResourceRecord = {
    kind: "process",
    id: String(agent.pid),
    driver: "native",
    runId: context.runId,
    namespace: context.namespace,
    createdAt: new Date().toISOString(),
    detail: { role: "pocketci-agent" },
  };
  await context.record(record);
  let client;
  try {
    client = await agent.connect();
  } catch (error) {
    await agent.stop();
    await context.forget(record);
    throw error;
  }
  return {
    client,
    volumesDir: `${context.runDir}/agent/volumes`,
    tasksDir: `${context.runDir}/agent/tasks`,
    resources: [record],
    close: async () => {
      await client.close();
      await agent.stop();
      await context.forget(record);
      return [];
    },
  };
}
