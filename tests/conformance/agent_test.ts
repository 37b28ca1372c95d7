import { createAgentDriver } from "../../drivers/agent_driver/driver.ts";
import { bootLocalMachine } from "../../drivers/agent_driver/local_machine.ts";
import { defineDriverConformance } from "./driver_suite.ts";

// The agent driver with the agent on the host over a unix socket (no hypervisor): the part
// of vz that is not the VM. The name is "vz" because that is the driver it serves.
defineDriverConformance({
  name: "agent (local)",
  createDriver: (ctx) =>
    Promise.resolve(
      createAgentDriver({ name: "vz", boot: () => bootLocalMachine(ctx), context: ctx }),
    ),
  absoluteMounts: false,
});
