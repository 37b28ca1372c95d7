import assert from "node:assert/strict";
import type { Driver, ExitStatus, ServiceHandle, ServiceSpec } from "../drivers/contract.ts";
import type { RunEvent } from "./events.ts";
import { Masker } from "./mask.ts";
import { RunServices } from "./services.ts";
import { TaskOutput } from "./task_output.ts";

/** A registry over a fake driver whose service prints `lines` and then ends as `exit` says. */
function registry(lines: string[], exit: Promise<ExitStatus>) {
  const events: RunEvent[] = [];
  const stops: number[] = [];
  const masker = new Masker(["s3cret"]);
  const driver = {
    name: "native",
    startService: (spec: ServiceSpec, output: (s: "stdout", c: Uint8Array) => void) => {
      for (const line of lines) output("stdout", new TextEncoder().encode(line + "\n"));
      const handle: ServiceHandle = {
        id: spec.id,
        wait: () => exit,
        stop: (graceMs) => {
          stops.push(graceMs);
          return Promise.resolve();
        },
        hostPort: (port) => port,
        dial: () => Promise.reject(new Error("connection refused")),
        exec: () => Promise.resolve({ code: 1 }),
      };
      return Promise.resolve(handle);
    },
  } as unknown as Driver;
  let n = 0;
  const services = new RunServices({
    driver,
    emit: (event) => events.push(event),
    newId: (name) => `${name}-${++n}`,
    output: (id, name) =>
      new TaskOutput(
        masker,
        (stream, data) => events.push({ type: "task.output", id, name, stream, data }),
      ),
    spec: (id, request) => ({
      id,
      name: request.name,
      env: {},
      mounts: [],
      ports: [...request.ports],
    }),
    signal: new AbortController().signal,
    graceMs: () => 1234,
    line: (error) => masker.mask(error instanceof Error ? error.message : String(error)),
  });
  return { services, events, stops };
}

const request = { name: "db", env: {}, mounts: [], ports: [5432] };

Deno.test("services: an exit before start() returned is still reported once it runs", async () => {
  const { services, events } = registry(["bye"], Promise.resolve({ code: 5 }));
  const info = await services.start(request);
  assert.deepEqual(info.hostPorts, { "5432": 5432 });
  await Promise.resolve();
  const ends = events.filter((e) => e.type === "service.end");
  assert.deepEqual(ends.map((e) => e.type === "service.end" && [e.status, e.code]), [[
    "exited",
    5,
  ]]);
  assert.deepEqual(await services.stopAll(), []);
  assert.equal(events.filter((e) => e.type === "service.end").length, 1, "no second end event");
});

Deno.test("services: a failed readiness check stops it, quotes its last lines masked, and ends it once", async () => {
  const { services, events, stops } = registry(
    ["one", "token s3cret", "three"],
    new Promise(() => {}),
  );
  const error = await services.start({
    ...request,
    ready: { probe: { tcp: 5432 }, timeoutMs: 300, intervalMs: 50 },
  }).then(() => undefined, (e) => e as Error);
  assert.match(
    error?.message ?? "",
    /^service "db" is not ready: tcp port 5432 did not pass within 300 ms \(last attempt: connection refused\); its last output: one \| token \*\*\* \| three$/,
  );
  assert.deepEqual(stops, [1234]);
  const ends = events.filter((e) => e.type === "service.end");
  assert.deepEqual(ends.map((e) => e.type === "service.end" && e.status), ["failed"]);
  assert.deepEqual(await services.stopAll(), []);
  assert.deepEqual(stops, [1234], "not stopped twice");
  assert.equal(services.logs("db-1"), "one\ntoken ***\nthree");
});

Deno.test("services: a driver without startService refuses service() in one line naming it", async () => {
  const services = new RunServices({
    driver: { name: "qemu" } as unknown as Driver,
    emit: () => {},
    newId: (name) => name,
    output: () => {
      throw new Error("not reached");
    },
    spec: () => {
      throw new Error("not reached");
    },
    signal: new AbortController().signal,
    graceMs: () => 0,
    line: String,
  });
  await assert.rejects(
    () => services.start(request),
    /^DriverError: the qemu driver does not run services yet; pick a driver that does \(docker, native, k8s, fly, digitalocean, hetzner\), add --service-driver=docker, or remove service\("db"\)$/,
  );
});
