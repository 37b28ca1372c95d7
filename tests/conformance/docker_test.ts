/**
 * The driver conformance suite against the local Docker engine.
 *
 * @module
 */

import { dockerFactory } from "../../drivers/docker/factory.ts";
import {
  assertEngine,
  enginePrivileged,
  ignoreDocker,
  TEST_IMAGE,
} from "../docker/engine_fixture.ts";
import { defineDriverConformance } from "./driver_suite.ts";

Deno.test({
  name: "docker: the local engine answers and the test image exists",
  ignore: ignoreDocker,
  fn: assertEngine,
});

if (!ignoreDocker) {
  // An engine that cannot start privileged containers makes the driver refuse them with an
  // UnsupportedError; the suite then checks exactly that instead of the privileged run.
  const privileged = await enginePrivileged();
  defineDriverConformance({
    name: "docker",
    createDriver: async (ctx) => {
      const driver = await dockerFactory.create({}, ctx);
      if (privileged) return driver;
      const capabilities = { ...driver.capabilities, privileged: false };
      return {
        name: driver.name,
        capabilities,
        startTask: (spec, output) => driver.startTask(spec, output),
        attachTask: (id, output) => driver.attachTask(id, output),
        createVolume: (spec) => driver.createVolume(spec),
        listCaches: (name) => driver.listCaches!(name),
        removeVolume: (volume) => driver.removeVolume(volume),
        putArchive: (volume, tar, path) => driver.putArchive(volume, tar, path),
        getArchive: (volume, paths) => driver.getArchive(volume, paths),
        startSandbox: (spec) => driver.startSandbox(spec),
        close: () => driver.close(),
      };
    },
    maintenance: (ctx) => dockerFactory.maintenance!({}, ctx),
    image: TEST_IMAGE,
    absoluteMounts: true,
    tasksArePid1: false,
  });
}
