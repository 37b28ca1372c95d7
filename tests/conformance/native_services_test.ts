/**
 * The service conformance checks against the native driver: services are host processes
 * (busybox httpd on a free port of 127.0.0.1).
 *
 * @module
 */

import { nativeFactory } from "../../drivers/native/factory.ts";
import { defineServiceConformance } from "./service_suite.ts";

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return await Promise.resolve(port);
}

const sh = (script: string) => ({ command: ["sh", "-c", script] });

defineServiceConformance({
  name: "native",
  createDriver: (ctx) => nativeFactory.create({}, ctx),
  port: freePort,
  server: (port, delayS) =>
    sh(
      `sleep ${delayS}; mkdir -p www; echo served > www/index.html; echo listening; ` +
        `exec busybox httpd -f -p 127.0.0.1:${port} -h www`,
    ),
  crash: (delayS) => sh(`sleep ${delayS}; echo about to crash; exit 3`),
  silent: () => sh("exec sleep 60"),
  remains: (ctx) =>
    Promise.resolve(
      [...ctx.live.values()].filter((record) => record.kind === "process").map((record) =>
        record.id
      ),
    ),
});
