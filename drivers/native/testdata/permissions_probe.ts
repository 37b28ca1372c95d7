/**
 * Run by driver_test.ts with exactly the native driver's declared permissions (plus
 * read access to the source): exercises tasks, volumes, archives, caches, sandboxes
 * and close under those permissions and prints "probe ok".
 *
 * @module
 */

import type { DriverContext } from "../../contract.ts";
import { nativeFactory } from "../factory.ts";
import { createTarStream, listTar, tarFromFiles } from "../../archive/mod.ts";

const stateDir = Deno.args[0];
const runDir = `${stateDir}/work/probe`;
await Deno.mkdir(runDir, { recursive: true });
const context: DriverContext = {
  namespace: "probe",
  runId: "probe",
  runDir,
  stateDir: `${stateDir}/namespaces/probe`,
  record: () => Promise.resolve(),
  forget: () => Promise.resolve(),
  warn: () => {},
};
const driver = await nativeFactory.create({}, context);
const volume = await driver.createVolume({ name: "v", kind: "volume" });
const cache = await driver.createVolume({ name: "c", kind: "cache" });
await driver.putArchive(volume, tarFromFiles({ "in.txt": "in" }));
await driver.putArchive(
  volume,
  createTarStream([{
    path: "link.txt",
    type: "symlink",
    mode: 0o777,
    size: 0,
    mtime: 0,
    linkTarget: "in.txt",
  }]),
);
const chunks: string[] = [];
const task = await driver.startTask({
  id: "t",
  name: "t",
  command: ["sh", "-c", "cat v/in.txt > c/out.txt; echo task-ran"],
  env: {},
  mounts: [{ volume, path: "v" }, { volume: cache, path: "c" }],
}, (_stream, chunk) => chunks.push(new TextDecoder().decode(chunk)));
const status = await task.wait();
if (status.code !== 0 || chunks.join("") !== "task-ran\n") throw new Error("task failed");
const stopping = await driver.startTask({
  id: "s",
  name: "s",
  command: ["sh", "-c", "sleep 30"],
  env: {},
  mounts: [],
}, () => {});
await stopping.stop(200);
if ((await stopping.wait()).code < 128) throw new Error("stop failed");
const linked = await listTar(await driver.getArchive(volume, ["link.txt"]));
if (linked[0]?.linkTarget !== "in.txt") throw new Error("symlink not extracted");
const entries = await listTar(await driver.getArchive(cache, ["out.txt"]));
if (new TextDecoder().decode(entries[0]?.content) !== "in") throw new Error("cache content wrong");
const box = await driver.startSandbox({ id: "b", name: "b", command: [], env: {}, mounts: [] });
if ((await box.exec({ command: ["true"] }, () => {})).code !== 0) throw new Error("exec failed");
await box.close();
if (driver.capabilities.limits) {
  // cgroups are handled through /bin/sh: the declared permissions are enough for them.
  const limits = { cpu: 0.5, memoryBytes: 32 * 1024 * 1024 };
  const oom = await driver.startTask({
    id: "oom",
    name: "oom",
    command: ["sh", "-c", 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo "${#x}"'],
    env: {},
    mounts: [],
    limits,
  }, () => {});
  if ((await oom.wait()).oomKilled !== true) throw new Error("limited task was not OOM-killed");
  const limited = await driver.startSandbox({
    id: "lb",
    name: "lb",
    command: [],
    env: {},
    mounts: [],
    limits,
  });
  if ((await limited.exec({ command: ["true"] }, () => {})).code !== 0) {
    throw new Error("limited exec failed");
  }
  await limited.close();
}
const report = await driver.close();
if (report.failed.length > 0) throw new Error(JSON.stringify(report.failed));
const maintenance = await nativeFactory.maintenance!({}, context);
for (const resource of await maintenance.listResources()) {
  await maintenance.removeResource(resource);
}
Deno.stdout.writeSync(new TextEncoder().encode("probe ok\n"));
