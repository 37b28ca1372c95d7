/**
 * The pipeline-level service checks for `--driver=native --service-driver=docker`: services are
 * containers on the local engine, tasks are host processes reaching them at
 * `127.0.0.1:hostPort(port)`. Then what only this pairing has: a service cannot mount the
 * run's (native) volumes, and a pipeline cannot turn the docker service driver on by itself.
 *
 * @module
 */

import assert from "node:assert/strict";
import { assertEngine, ignoreDocker, TEST_IMAGE } from "../docker/engine_fixture.ts";
import { runPipelineSource } from "../helpers/pipeline_harness.ts";
import { definePipelineServiceConformance } from "./pipeline_services_suite.ts";
import { runContainers } from "./docker_service_helpers.ts";

Deno.test({
  name: "pipeline services [native with docker services]: the local engine answers",
  ignore: ignoreDocker,
  fn: assertEngine,
});

definePipelineServiceConformance({
  driver: "native",
  serviceDriver: "docker",
  ignore: ignoreDocker,
  port: () => Promise.resolve(8080),
  helpers: String.raw`
const IMAGE = ${JSON.stringify(TEST_IMAGE)};
const server = (name: string, delayS: number) =>
  service(name).image(IMAGE).ports(PORT).run("sh", "-c",
    "echo token=$${"{"}TOKEN:-none}; sleep " + delayS + "; mkdir -p /www; echo served > /www/index.html; " +
      "echo listening; exec httpd -f -p " + PORT + " -h /www");
const crasher = (name: string, delayS = 0) =>
  service(name).image(IMAGE).run("sh", "-c", "sleep " + delayS + "; echo about to crash; exit 3");
const client = (url: string) => task("client").run("busybox", "wget", "-qO-", url);
const urlOf = (svc: { hostPort(port: number): number }) => "http://127.0.0.1:" + svc.hostPort(PORT) + "/";
`,
  remains: runContainers,
});

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({
    name: `pipeline services [native with docker services]: ${name}`,
    ignore: ignoreDocker,
    sanitizeOps: false,
    sanitizeResources: false,
    fn,
  });

test("the service is a container, the task a host process; ctx.serviceDriver says docker", async () => {
  const result = await runPipelineSource(
    `import { pipeline, service, task } from "pocketci";
export default pipeline("svc", async (ctx) => {
  console.log("DRIVERS " + ctx.driver + " " + ctx.serviceDriver);
  await using web = await service("web").image(${JSON.stringify(TEST_IMAGE)}).ports(80)
    .run("sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www")
    .ready({ tcp: 80 }).start();
  const port = web.hostPort(80);
  console.log("PORT " + port);
  const page = await task("client").sh("busybox wget -qO- http://127.0.0.1:" + port + "/ && hostname");
  console.log("PAGE " + JSON.stringify(page.stdout.trim().split("\\n")));
});`,
    { driver: "native", serviceDriver: "docker" },
  );
  assert.equal(result.outcome.exitCode, 0, result.stderr);
  assert.ok(result.logs.includes("DRIVERS native docker"), result.logs.join("\n"));
  const port = Number(result.logs.find((line) => line.startsWith("PORT "))?.slice(5));
  assert.ok(port > 0 && port !== 80, `a published port other than 80: ${port}`);
  const [served, taskHost] = JSON.parse(
    result.logs.find((line) => line.startsWith("PAGE "))?.slice(5) ?? "[]",
  ) as string[];
  assert.equal(taskHost, Deno.hostname(), "the task ran on this host");
  assert.notEqual(served, Deno.hostname(), "the page came from the container");
  const start = result.events.find((event) => event.type === "run.start");
  assert.equal(start?.type === "run.start" && start.serviceDriver, "docker");
  assert.deepEqual(result.outcome.leftovers, []);
  assert.deepEqual(await runContainers(result), []);
  await Deno.remove(result.dir, { recursive: true });
});

test("a service cannot mount the run's native volumes: one line", async () => {
  const result = await runPipelineSource(
    `import { pipeline, service, volume } from "pocketci";
export default pipeline("svc", async () => {
  const data = await volume("data");
  await service("db").image(${
      JSON.stringify(TEST_IMAGE)
    }).mount(data, "/data").run("sleep", "60").start();
});`,
    { driver: "native", serviceDriver: "docker" },
  );
  assert.equal(result.outcome.exitCode, 1, result.stderr);
  assert.match(
    result.outcome.error ?? "",
    /service "db" mounts a volume, but services run on the docker service driver \(--service-driver\) while the run's volumes belong to the native driver; remove \.mount\(\) from the service/,
  );
  assert.doesNotMatch(result.outcome.error ?? "", /\n/);
  assert.deepEqual(await runContainers(result), []);
  await Deno.remove(result.dir, { recursive: true });
});

test("a pipeline cannot turn the docker service driver on: without --service-driver its services are host processes", async () => {
  const result = await runPipelineSource(
    `import { pipeline, service } from "pocketci";
export default pipeline("svc", async (ctx) => {
  console.log("SERVICE DRIVER " + ctx.serviceDriver);
  // Whatever the pipeline mutates, the context is only a copy of what the runner decided.
  try { (ctx as { serviceDriver: string }).serviceDriver = "docker"; } catch { /* frozen */ }
  await service("web").image(${JSON.stringify(TEST_IMAGE)}).ports(80).start();
});`,
    { driver: "native" },
  );
  assert.equal(result.outcome.exitCode, 1, result.stderr);
  assert.ok(result.logs.includes("SERVICE DRIVER native"), result.logs.join("\n"));
  assert.match(
    result.outcome.error ?? "",
    /service "web" could not start: .*the native driver ignores images/,
  );
  assert.deepEqual(await runContainers(result), [], "no container was started for the run");
  await Deno.remove(result.dir, { recursive: true });
});
