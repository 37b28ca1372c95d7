/**
 * The service conformance checks against the local Docker engine: services are containers on
 * the run's network, found by name from tasks, probed at their own address.
 *
 * @module
 */

import { dockerFactory } from "../../drivers/docker/factory.ts";
import { LABEL } from "../../drivers/docker/labels.ts";
import { openEngine } from "../../drivers/docker/engine.ts";
import { resolveEngineAddress } from "../../drivers/docker/engine_address.ts";
import { assertEngine, ignoreDocker, TEST_IMAGE } from "../docker/engine_fixture.ts";
import { defineServiceConformance } from "./service_suite.ts";

/** The image whose ENTRYPOINT serves on the port its CMD names (built by .ci/setup_docker.sh). */
export const SERVICE_IMAGE = "pocketci-test/service:latest";

Deno.test({
  name: "docker services: the local engine answers and the test image exists",
  ignore: ignoreDocker,
  fn: assertEngine,
});

const sh = (script: string) => ({ image: TEST_IMAGE, command: ["sh", "-c", script] });

if (!ignoreDocker) {
  defineServiceConformance({
    name: "docker",
    createDriver: (ctx) => dockerFactory.create({}, ctx),
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
    remains: async (_ctx, handle) => {
      const engine = await openEngine(resolveEngineAddress(undefined, Deno.env.toObject()));
      try {
        const containers = await engine.docker.listContainers({
          all: true,
          filters: { label: [`${LABEL.task}=${handle.id}`] },
        });
        return containers.map((container) => container.Id);
      } finally {
        await engine.close();
      }
    },
  });
}
