/**
 * Services on a Docker engine reached over SSH (what the cloud machine drivers use): the
 * readiness probe of a service connects to the container's address from the engine's host,
 * through the SSH connection (`direct-tcpip`), since the runner's host cannot route to it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createDockerDriver } from "../../drivers/docker/create.ts";
import { probeOnce, waitReady } from "../../runner/readiness.ts";
import { createTestContext } from "../conformance/context.ts";
import { OutputCollector } from "../conformance/driver_suite.ts";
import { engineProblem, TEST_IMAGE } from "./engine_fixture.ts";
import { sshdProblem, startSshd } from "./sshd_fixture.ts";

const problem = (await engineProblem()) ?? (await sshdProblem());

Deno.test({
  name: "docker over ssh: a service's readiness is probed through the ssh connection",
  ignore: problem !== undefined && Deno.env.get("CI") !== "true",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    if (problem !== undefined) throw new Error(problem);
    const sshd = await startSshd();
    const ctx = await createTestContext();
    try {
      const driver = await createDockerDriver(ctx, {
        host: sshd.url,
        hostSource: "the DSN's host parameter",
        ssh: {
          home: sshd.home,
          agentSocket: false,
          knownHostsFiles: [`${sshd.home}/.ssh/known_hosts`],
        },
      });
      try {
        const output = new OutputCollector();
        const handle = await driver.startService!({
          id: `ssh-svc-${crypto.randomUUID().slice(0, 6)}`,
          name: "remote-web",
          image: TEST_IMAGE,
          command: [
            "sh",
            "-c",
            "sleep 1; mkdir -p /www; echo served > /www/index.html; echo listening; exec httpd -f -p 8080 -h /www",
          ],
          env: {},
          mounts: [],
          ports: [],
        }, output.sink);
        await assert.rejects(
          () => probeOnce(handle, { tcp: 8080 }, AbortSignal.timeout(3000)),
          /through ssh/,
          "before the server listens, the remote side refuses the channel",
        );
        await waitReady(handle, {
          probe: { http: "http://localhost:8080/" },
          timeoutMs: 15_000,
          intervalMs: 100,
          exited: handle.wait(),
          signal: new AbortController().signal,
        });
        assert.match(output.stdout, /listening/);
        await handle.stop(2000);
      } finally {
        const report = await driver.close();
        assert.deepEqual(report.failed, []);
      }
    } finally {
      await ctx.dispose();
      await sshd.stop();
    }
  },
});
