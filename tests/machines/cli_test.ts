/**
 * `pocketci run --driver=digitalocean:...` / `hetzner:...` end to end against the fakes: the
 * machine's provisioning stages reach the terminal as progress lines and `--json` as `log`
 * events, the task runs on the machine, and nothing is left at the provider afterwards.
 *
 * @module
 */

import assert from "node:assert/strict";
import { runCli } from "../helpers/cli.ts";
import { ignore, type Kind, KINDS, leftovers, problem, startFake } from "./harness.ts";

const URL_ENV: Record<Kind, string> = {
  digitalocean: "DIGITALOCEAN_API_URL",
  hetzner: "HETZNER_API_URL",
};

for (const kind of KINDS) {
  Deno.test({
    name:
      `pocketci run --driver=${kind}: progress lines and log events for each stage, nothing left`,
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      if (problem) throw new Error(problem);
      const fake = startFake(kind);
      const dir = await Deno.makeTempDir({ prefix: "pocketci-machines-cli-" });
      try {
        await Deno.writeTextFile(
          `${dir}/pipeline.ts`,
          `import { pipeline, task } from "pocketci";
export default pipeline("cloud", async () => {
  await task("hello").image("busybox:latest").sh("echo hello from the cloud");
});
`,
        );
        const env = { POCKETCI_STATE_DIR: `${dir}/.state`, [URL_ENV[kind]]: fake.url };
        const driver = `--driver=${kind}:token=${fake.token}`;
        const text = await runCli(["run", driver, `${dir}/pipeline.ts`], { env });
        assert.equal(text.code, 0, text.stderr + text.stdout);
        const noun = kind === "digitalocean" ? "droplet" : "server";
        assert.match(text.stdout, new RegExp(`${kind}: creating ${noun} pocketci-`));
        assert.match(text.stdout, /running at 127\.[0-9.]+ after /);
        assert.match(text.stdout, /ready in .*\(SSH .*, Docker .*\)/);
        assert.match(text.stdout, new RegExp(`${kind}: deleted ${noun} `));
        assert.match(text.stdout, /hello from the cloud/);
        assert.ok(!(text.stdout + text.stderr).includes(fake.token), "the token was printed");
        const json = await runCli(["run", "--json", driver, `${dir}/pipeline.ts`], { env });
        assert.equal(json.code, 0, json.stderr);
        const events = json.stdout.trim().split("\n").map((line) => JSON.parse(line));
        const logs = events.filter((e) => e.type === "log" && e.level === "info")
          .map((e) => e.message as string);
        assert.ok(logs.some((m) => m.includes(`creating ${noun}`)), logs.join("\n"));
        assert.ok(logs.some((m) => /ready in /.test(m)), logs.join("\n"));
        assert.deepEqual(leftovers(fake), { machines: 0, volumes: 0, keys: 0, sshd: 0 });
      } finally {
        await fake.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

const SIZE_PARAM: Record<Kind, string> = { digitalocean: "size", hetzner: "server_type" };
const HINTED_SIZE: Record<Kind, string> = { digitalocean: "s-4vcpu-8gb", hetzner: "cx33" };
const SMALLEST_SIZE: Record<Kind, string> = { digitalocean: "s-1vcpu-1gb", hetzner: "cx23" };

for (const kind of KINDS) {
  Deno.test({
    name: `pocketci run --driver=${kind}:${
      SIZE_PARAM[kind]
    }=auto: pipeline("x", { resources }) sizes the machine before the first (small) task`,
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      if (problem) throw new Error(problem);
      const fake = startFake(kind);
      const dir = await Deno.makeTempDir({ prefix: "pocketci-machines-hint-" });
      try {
        const body = (options: string) =>
          `import { pipeline, task } from "pocketci";
export default pipeline("sized", ${options}async () => {
  await task("small").image("busybox:latest").sh("echo small task");
});
`;
        await Deno.writeTextFile(
          `${dir}/hinted.ts`,
          body(`{ resources: { cpu: 4, memory: "8Gi" } }, `),
        );
        await Deno.writeTextFile(`${dir}/plain.ts`, body(""));
        const env = { POCKETCI_STATE_DIR: `${dir}/.state`, [URL_ENV[kind]]: fake.url };
        const driver = `--driver=${kind}:token=${fake.token},${SIZE_PARAM[kind]}=auto`;
        const sizeLine = new RegExp(`\\(${SIZE_PARAM[kind]}=([a-z0-9-]+),`);
        const hinted = await runCli(["run", driver, `${dir}/hinted.ts`], { env });
        assert.equal(hinted.code, 0, hinted.stderr + hinted.stdout);
        assert.equal(sizeLine.exec(hinted.stdout)?.[1], HINTED_SIZE[kind], hinted.stdout);
        assert.match(hinted.stdout, /small task/);
        const plain = await runCli(["run", driver, `${dir}/plain.ts`], { env });
        assert.equal(plain.code, 0, plain.stderr + plain.stdout);
        assert.equal(sizeLine.exec(plain.stdout)?.[1], SMALLEST_SIZE[kind], plain.stdout);
        assert.deepEqual(leftovers(fake), { machines: 0, volumes: 0, keys: 0, sshd: 0 });
      } finally {
        await fake.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
