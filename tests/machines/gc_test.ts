/**
 * Leak-proofing across a crash: a run killed with SIGKILL while its machine is being provisioned
 * leaves a journal naming the machine, its volume and the namespace key (recorded before each
 * API call), and `pocketci gc --driver=...` removes all three at the provider.
 *
 * @module
 */

import assert from "node:assert/strict";
import { machineFactory } from "../../drivers/machines/factory.ts";
import { resolveDsn } from "../../dsn/resolve.ts";
import { collectGarbage } from "../../runner/gc.ts";
import { ignore, type Kind, KINDS, leftovers, problem, startFake } from "./harness.ts";

const CHILD = new URL("./testdata/provision_child.ts", import.meta.url).pathname;
const CREATE: Record<Kind, RegExp> = { digitalocean: /^\/droplets$/, hetzner: /^\/servers$/ };
const URL_ENV: Record<Kind, string> = {
  digitalocean: "DIGITALOCEAN_API_URL",
  hetzner: "HETZNER_API_URL",
};

for (const kind of KINDS) {
  Deno.test({
    name:
      `machines (${kind}): kill -9 mid-provisioning, then gc removes the machine, its volume and the key`,
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      if (problem) throw new Error(problem);
      // Machines stay "creating" long enough for the kill to land mid-provisioning.
      const fake = startFake(kind, { activationDelayMs: 1_500 });
      const stateDir = await Deno.makeTempDir({ prefix: "pocketci-machines-gc-" });
      let created!: () => void;
      const createSeen = new Promise<void>((resolve) => (created = resolve));
      fake.onRequest = (request) => {
        if (request.method === "POST" && CREATE[kind].test(request.path)) created();
      };
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CHILD, kind, stateDir, "ns-crash", "crashrun01", fake.token],
        env: { [URL_ENV[kind]]: fake.url },
        stdout: "null",
        stderr: "piped",
      }).spawn();
      try {
        await Promise.race([
          createSeen,
          child.status.then(async () => {
            throw new Error(
              `the child ended early: ${new TextDecoder().decode((await child.output()).stderr)}`,
            );
          }),
        ]);
        await new Promise((r) => setTimeout(r, 100)); // the create's answer reaches the child
        child.kill("SIGKILL");
        await child.status;
        assert.equal(leftovers(fake).machines, 1, "the killed run left its machine");
        assert.equal(leftovers(fake).volumes, 1);
        assert.equal(leftovers(fake).keys, 1);
        Deno.env.set(URL_ENV[kind], fake.url);
        const dsn = resolveDsn(`${kind}:token=${fake.token}`, { env: {}, cwd: stateDir });
        const report = await collectGarbage({
          stateDir,
          dsn,
          defaultDsn: () => dsn,
          factory: () => Promise.resolve(machineFactory(kind)),
          cacheTtlMs: 86_400_000,
          dryRun: false,
        });
        const removed = report.actions.filter((a) => a.action === "removed").map((a) =>
          a.resource.kind
        )
          .sort();
        assert.deepEqual(report.problems, []);
        assert.deepEqual(removed, ["key", "machine", "volume"]);
        assert.deepEqual(leftovers(fake), { machines: 0, volumes: 0, keys: 0, sshd: 0 });
      } finally {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
        await child.stderr.cancel().catch(() => {});
        await fake.close();
        await Deno.remove(stateDir, { recursive: true });
      }
    },
  });
}
