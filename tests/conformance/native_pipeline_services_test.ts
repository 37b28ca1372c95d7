/**
 * The pipeline-level service checks against the native driver: a service is a host process
 * (busybox httpd on a free port), reached by tasks at `127.0.0.1:hostPort(port)`.
 *
 * @module
 */

import { definePipelineServiceConformance } from "./pipeline_services_suite.ts";

/** A port nothing listens on right now (and the one after it, for a second server). */
async function freePort(): Promise<number> {
  for (;;) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    try {
      Deno.listen({ hostname: "127.0.0.1", port: port + 1 }).close();
      return await Promise.resolve(port);
    } catch {
      // taken: try another
    }
  }
}

/** The pids of processes whose working directory lies under `dir`. */
export async function processesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cwd = await Deno.readLink(`/proc/${entry.name}/cwd`);
      if (cwd.startsWith(dir + "/")) found.push(entry.name);
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

definePipelineServiceConformance({
  driver: "native",
  port: freePort,
  helpers: String.raw`
const server = (name: string, delayS: number) =>
  service(name).ports(PORT).run("sh", "-c",
    "echo token=$${"{"}TOKEN:-none}; sleep " + delayS + "; mkdir -p www; echo served > www/index.html; " +
      "echo listening; exec busybox httpd -f -p 127.0.0.1:" + PORT + " -h www");
const crasher = (name: string, delayS = 0) =>
  service(name).run("sh", "-c", "sleep " + delayS + "; echo about to crash; exit 3");
const client = (url: string) => task("client").run("busybox", "wget", "-qO-", url);
const urlOf = (svc: { hostPort(port: number): number }) => "http://127.0.0.1:" + svc.hostPort(PORT) + "/";
`,
  remains: (result) => processesUnder(result.stateDir),
});
