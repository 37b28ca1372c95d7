/**
 * Service conformance at the pipeline level: real pipelines through the runner (pipeline in its
 * own process) start services, wait for readiness, reach them from tasks, read their masked
 * logs, and fail clearly when a service crashes or never gets ready; every service is stopped
 * and removed on success, on failure and on Ctrl-C. Each driver's test file calls
 * {@link definePipelineServiceConformance}.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { RunEvent } from "../../runner/events.ts";
import { type HarnessResult, runPipelineSource } from "../helpers/pipeline_harness.ts";

/** How to run the pipeline service checks against one driver. */
export interface PipelineServiceOptions {
  /** The driver string (DSN). */
  readonly driver: string;
  /** `--service-driver`: the services run on this driver instead. */
  readonly serviceDriver?: string;
  /**
   * TypeScript declaring, from `PORT` (a number constant the suite defines first):
   * `server(name, delayS)`, a service builder named `name` that prints `token=$TOKEN` (or
   * `token=none`), then after `delayS` seconds `listening`, and serves a page reading `served`
   * on `PORT`; `crasher(name, delayS = 0)`, one that prints `about to crash` and exits with
   * code 3 after `delayS` seconds;
   * `client(url)`, a promise of a task result whose stdout is the page at `url`; and
   * `urlOf(svc)`, the URL a task uses to reach a started service.
   */
  readonly helpers: string;
  /** A port for the server (a free one on host drivers). */
  readonly port: () => Promise<number>;
  /** What is left of the run's services after the run (containers, processes); must be empty. */
  readonly remains: (result: HarnessResult) => Promise<string[]>;
  /** Skip every test (with the reason) instead of running; only outside CI. */
  readonly ignore?: boolean;
}

function ofType<T extends RunEvent["type"]>(
  events: readonly RunEvent[],
  type: T,
): Extract<RunEvent, { type: T }>[] {
  return events.filter((event) => event.type === type) as Extract<RunEvent, { type: T }>[];
}

/** Registers the pipeline-level service tests for one driver. */
export function definePipelineServiceConformance(options: PipelineServiceOptions): void {
  const prefix = `pipeline services [${options.driver}${
    options.serviceDriver === undefined ? "" : ` with ${options.serviceDriver} services`
  }]`;
  const run = async (body: string, extra: Parameters<typeof runPipelineSource>[1] = {}) => {
    const port = await options.port();
    const source = `import { pipeline, secret, service, task } from "pocketci";
const PORT = ${port};
${options.helpers}
${body}`;
    return await runPipelineSource(source, {
      driver: options.driver,
      serviceDriver: options.serviceDriver,
      graceMs: 3000,
      ...extra,
    });
  };
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({
      name: `${prefix}: ${name}`,
      ignore: options.ignore,
      sanitizeOps: false,
      sanitizeResources: false,
      fn,
    });
  const cleanup = async (result: HarnessResult) => {
    assert.deepEqual(result.outcome.leftovers, [], "the run left resources behind");
    assert.deepEqual(await options.remains(result), [], "a service outlived the run");
    await Deno.remove(result.dir, { recursive: true }).catch(() => {});
  };

  test("start() waits for readiness; a task reaches the service; logs() are masked; await using stops it", async () => {
    const result = await run(
      `export default pipeline("svc", async () => {
      {
        await using web = await server("web", 1).env({ TOKEN: secret("TOKEN") })
          .ready({ http: \`http://localhost:\${PORT}/\` }, { timeout: "20s", interval: "100ms" })
          .start();
        const fetched = await client(urlOf(web));
        console.log("FETCHED " + JSON.stringify(fetched.stdout.trim()));
        console.log("LOGS " + JSON.stringify(await web.logs()));
      }
      console.log("AFTER BLOCK");
    });`,
      { secrets: { TOKEN: "service-secret-value" } },
    );
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    assert.ok(result.logs.includes(`FETCHED "served"`), result.logs.join("\n"));
    const logs = result.logs.find((line) => line.startsWith("LOGS "));
    assert.match(logs ?? "", /listening/);
    assert.match(logs ?? "", /token=\*\*\*/, "the service's secret is masked in logs()");
    assert.doesNotMatch(
      result.stdout + result.stderr + JSON.stringify(result.events),
      /service-secret-value/,
    );
    const ready = ofType(result.events, "service.ready");
    assert.equal(ready.length, 1);
    assert.ok(ready[0].durationMs >= 900, `ready after ${ready[0].durationMs} ms`);
    const ends = ofType(result.events, "service.end");
    assert.deepEqual(ends.map((end) => end.status), ["stopped"]);
    const order = result.events.map((event) =>
      event.type === "service.end"
        ? "end"
        : event.type === "log" && event.message === "AFTER BLOCK"
        ? "after"
        : ""
    ).filter(Boolean);
    assert.deepEqual(order, ["end", "after"], "await using stopped it at the end of the block");
    assert.match(result.stdout, /^web \| listening$/m, "its output streams with its own prefix");
    await cleanup(result);
  });

  test("a service that crashes fails start() with one line naming the check and its last lines", async () => {
    const result = await run(`export default pipeline("svc", async () => {
      await crasher("db").ready({ tcp: PORT }, { timeout: "20s", interval: "100ms" }).start();
    });`);
    assert.equal(result.outcome.exitCode, 1, result.stderr);
    const error = result.outcome.error ?? "";
    assert.doesNotMatch(error, /\n/);
    assert.match(
      error,
      new RegExp(
        `service "db" is not ready: it exited with code 3 before tcp port ${"\\d+"} passed .*; its last output: .*about to crash`,
      ),
    );
    assert.deepEqual(ofType(result.events, "service.end").map((end) => end.status), ["failed"]);
    await cleanup(result);
  });

  test("a service that exits while the run goes on is reported, even one that exits at once", async () => {
    const result = await run(`export default pipeline("svc", async () => {
      await crasher("early").start();
      await crasher("db", 1).start();
      console.log("STARTED");
      await new Promise((resolve) => setTimeout(resolve, 3000));
    });`);
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    assert.ok(result.logs.includes("STARTED"));
    const ends = ofType(result.events, "service.end");
    assert.deepEqual(
      ends.map((end) => `${end.name}:${end.status}:${end.code}`).sort(),
      ["db:exited:3", "early:exited:3"],
    );
    assert.match(result.stderr, /✗ service "db" exited with code 3 while the run went on/);
    assert.match(result.stderr, /✗ service "early" exited with code 3 while the run went on/);
    assert.match(result.stdout, /^early \| about to crash$/m);
    await cleanup(result);
  });

  test("a service that never gets ready fails start() at the timeout", async () => {
    const started = performance.now();
    const result = await run(`export default pipeline("svc", async () => {
      await server("slow", 30).ready({ tcp: PORT }, { timeout: "1500ms", interval: "100ms" }).start();
    });`);
    const took = performance.now() - started;
    assert.equal(result.outcome.exitCode, 1, result.stderr);
    assert.match(
      result.outcome.error ?? "",
      /service "slow" is not ready: tcp port \d+ did not pass within 1500 ms \(last attempt: .+\); its last output: token=none$/,
    );
    assert.ok(took < 20_000, `the run ended after ${Math.round(took)} ms`);
    await cleanup(result);
  });

  test("a service still running when the pipeline ends (success or failure) is stopped and removed", async () => {
    for (const fail of [false, true]) {
      const result = await run(`export default pipeline("svc", async () => {
        const web = await server("web", 0).ready({ tcp: PORT }).start();
        console.log("STARTED " + web.name);
        ${fail ? 'throw new Error("the pipeline failed");' : ""}
      });`);
      assert.equal(result.outcome.exitCode, fail ? 1 : 0, result.stderr);
      assert.ok(result.logs.includes("STARTED web"));
      assert.deepEqual(ofType(result.events, "service.end").map((end) => end.status), ["stopped"]);
      await cleanup(result);
    }
  });

  test("Ctrl-C while a service runs (and while another waits for readiness) stops both", async () => {
    const result = await run(
      `export default pipeline("svc", async () => {
        await server("web", 0).ready({ tcp: PORT }).start();
        await server("late", 60).ready({ tcp: PORT + 1 }, { timeout: "60s" }).start();
      });`,
      {
        onEvent: (event, runner) => {
          if (event.type === "service.start" && event.name === "late") {
            setTimeout(() => runner.interrupt("SIGINT"), 300);
          }
        },
      },
    );
    assert.equal(result.outcome.exitCode, 130, result.stderr);
    const ends = ofType(result.events, "service.end");
    assert.deepEqual(ends.map((end) => `${end.name}:${end.status}`).sort(), [
      "late:failed",
      "web:stopped",
    ]);
    await cleanup(result);
  });

  test("--timeout while a service runs stops and removes it", async () => {
    const result = await run(
      `export default pipeline("svc", async () => {
        await server("web", 0).ready({ tcp: PORT }).start();
        await new Promise((resolve) => setTimeout(resolve, 30_000));
      });`,
      { timeoutMs: 2500 },
    );
    assert.equal(result.outcome.status, "timeout", result.stderr);
    assert.deepEqual(ofType(result.events, "service.end").map((end) => end.status), ["stopped"]);
    await cleanup(result);
  });

  test("two running services cannot share a name; privileged needs the operator's grant", async () => {
    const result = await run(`export default pipeline("svc", async () => {
      await server("web", 0).ready({ tcp: PORT }).start();
      const second = await server("web", 0).start().then(() => "started", (e) => e.message);
      console.log("SECOND " + second);
      const privileged = await server("root", 0).privileged().start().then(() => "started", (e) => e.message);
      console.log("PRIVILEGED " + privileged);
    });`);
    assert.equal(result.outcome.exitCode, 0, result.stderr);
    assert.ok(
      result.logs.some((line) =>
        /^SECOND service "web" is already running in this run: stop\(\) it first/.test(line)
      ),
      result.logs.join("\n"),
    );
    assert.ok(
      result.logs.some((line) =>
        /^PRIVILEGED .*privileged\(\) needs the operator's grant: pass --allow-privileged/.test(
          line,
        )
      ),
      result.logs.join("\n"),
    );
    await cleanup(result);
  });
}
