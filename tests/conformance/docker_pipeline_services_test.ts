/**
 * The pipeline-level service checks against the docker driver on the local engine: services
 * are containers on the run's network, reached by tasks at `name:port`.
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import Docker from "dockerode";
import { LABEL } from "../../drivers/docker/labels.ts";
import { assertEngine, ignoreDocker, TEST_IMAGE } from "../docker/engine_fixture.ts";
import { definePipelineServiceConformance } from "./pipeline_services_suite.ts";

Deno.test({
  name: "pipeline services [docker]: the local engine answers",
  ignore: ignoreDocker,
  fn: assertEngine,
});

definePipelineServiceConformance({
  driver: "docker",
  ignore: ignoreDocker,
  port: () => Promise.resolve(8080),
  helpers: String.raw`
const IMAGE = ${JSON.stringify(TEST_IMAGE)};
const server = (name: string, delayS: number) =>
  service(name).image(IMAGE).run("sh", "-c",
    "echo token=$${"{"}TOKEN:-none}; sleep " + delayS + "; mkdir -p /www; echo served > /www/index.html; " +
      "echo listening; exec httpd -f -p " + PORT + " -h /www");
const crasher = (name: string, delayS = 0) =>
  service(name).image(IMAGE).run("sh", "-c", "sleep " + delayS + "; echo about to crash; exit 3");
const client = (url: string) => task("client").image(IMAGE).run("wget", "-qO-", url);
const urlOf = (svc: { name: string }) => "http://" + svc.name + ":" + PORT + "/";
`,
  remains: async (result) => {
    const start = result.events.find((event) => event.type === "run.start");
    if (start?.type !== "run.start") throw new Error("the run has no run.start event");
    const docker = new Docker({ socketPath: "/var/run/docker.sock" });
    const containers = await docker.listContainers({
      all: true,
      filters: { label: [`${LABEL.run}=${start.runId}`] },
    });
    return containers.map((container) => `${container.Id} ${container.Labels[LABEL.kind]}`);
  },
});
