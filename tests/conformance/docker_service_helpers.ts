/**
 * What the pipeline service checks need on every driver whose services are containers on the
 * local engine (docker, and the fake DigitalOcean/Hetzner machines, which forward it): the
 * helpers for tasks on the run's network, and the run's containers left on the engine.
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import Docker from "dockerode";
import { LABEL } from "../../drivers/docker/labels.ts";
import { SERVICE_IMAGE, TEST_IMAGE } from "../docker/engine_fixture.ts";
import type { ServiceConformanceOptions } from "./service_suite.ts";
import { type HarnessResult, runIdOf } from "../helpers/pipeline_harness.ts";

/** The run's containers still on the local engine, as `id kind`. */
export async function runContainers(result: HarnessResult): Promise<string[]> {
  const runId = runIdOf(result);
  const docker = new Docker({ socketPath: "/var/run/docker.sock" });
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`${LABEL.run}=${runId}`] },
  });
  return containers.map((container) => `${container.Id} ${container.Labels[LABEL.kind]}`);
}

/** `helpers` of the pipeline service suite for tasks on the run's network (`name:PORT`). */
export const NETWORK_SERVICE_HELPERS: string = String.raw`
const IMAGE = ${JSON.stringify(TEST_IMAGE)};
const server = (name: string, delayS: number) =>
  service(name).image(IMAGE).run("sh", "-c",
    "echo token=$${"{"}TOKEN:-none}; sleep " + delayS + "; mkdir -p /www; echo served > /www/index.html; " +
      "echo listening; exec httpd -f -p " + PORT + " -h /www");
const crasher = (name: string, delayS = 0) =>
  service(name).image(IMAGE).run("sh", "-c", "sleep " + delayS + "; echo about to crash; exit 3");
const client = (url: string) => task("client").image(IMAGE).run("wget", "-qO-", url);
const urlOf = (svc: { name: string }) => "http://" + svc.name + ":" + PORT + "/";
`;

const sh = (script: string) => ({ image: TEST_IMAGE, command: ["sh", "-c", script] });

/** The service suite's specs for drivers that run images (busybox and the test service image). */
export const BUSYBOX_SERVICES: Pick<
  ServiceConformanceOptions,
  "port" | "server" | "crash" | "silent" | "imageDefaults" | "fetchTask"
> = {
  port: () => Promise.resolve(8080),
  server: (port, delayS) =>
    sh(
      `sleep ${delayS}; mkdir -p /www; echo served > /www/index.html; echo listening; ` +
        `exec httpd -f -p ${port} -h /www`,
    ),
  crash: (delayS) => sh(`sleep ${delayS}; echo about to crash; exit 3`),
  silent: () => sh("exec sleep 60"),
  imageDefaults: {
    spec: { image: SERVICE_IMAGE },
    port: 8080,
    printed: "entrypoint ran with CMD 8080",
  },
  fetchTask: (url) => ({ image: TEST_IMAGE, command: ["wget", "-qO-", url] }),
};
