/**
 * Shared set-up for the machine-driver tests: a fake provider (DigitalOcean or Hetzner), a
 * provider client pointed at it, a pool with short timings, and a run context; plus the check
 * that nothing was left at the fake (machines, volumes, keys, sshd processes).
 *
 * @module
 */

import { ApiClient } from "../../drivers/machines/api_client.ts";
import { DigitalOceanProvider } from "../../drivers/machines/digitalocean.ts";
import { HetznerProvider } from "../../drivers/machines/hetzner.ts";
import { MachinePool, type PoolSettings } from "../../drivers/machines/pool.ts";
import type { MachineProvider } from "../../drivers/machines/provider.ts";
import { digitalOceanSize, hetznerServerType } from "../../drivers/machines/sizing.ts";
import { createTestContext, type TestContext } from "../conformance/context.ts";
import { engineProblem } from "../docker/engine_fixture.ts";
import { FakeDigitalOcean } from "../fakes/cloud/digitalocean.ts";
import { FakeHetzner } from "../fakes/cloud/hetzner.ts";
import { sshdProblem } from "../fakes/cloud/machine_host.ts";
import type { FakeCloud } from "../fakes/cloud/fake_server.ts";

/** Why these tests cannot run here (no engine, no sshd), or undefined. */
export const problem: string | undefined = (await engineProblem()) ?? (await sshdProblem());

/** Outside CI a missing component ignores the tests; in CI they run and fail. */
export const ignore: boolean = problem !== undefined && Deno.env.get("CI") !== "true";

/** Which provider a test runs against. */
export type Kind = "digitalocean" | "hetzner";

/** Both providers. */
export const KINDS: readonly Kind[] = ["digitalocean", "hetzner"];

/** A fake of the kind. */
export function startFake(kind: Kind, options: { activationDelayMs?: number } = {}): FakeCloud {
  return kind === "digitalocean" ? new FakeDigitalOcean(options) : new FakeHetzner(options);
}

/** A provider client for the fake (fast retries). */
export function providerFor(
  kind: Kind,
  fake: FakeCloud,
  namespace: string,
  extra: { tags?: string[]; labels?: Record<string, string> } = {},
): MachineProvider {
  const api = new ApiClient({
    provider: kind,
    baseUrl: fake.url,
    token: fake.token,
    backoffMs: 20,
    maxRateWaitMs: 200,
  });
  return kind === "digitalocean"
    ? new DigitalOceanProvider(api, { namespace, region: "nyc3", tags: extra.tags ?? [] })
    : new HetznerProvider(api, { namespace, location: "nbg1", labels: extra.labels ?? {} });
}

/** Pool settings with short timings. */
export function settingsFor(kind: Kind, overrides: Partial<PoolSettings> = {}): PoolSettings {
  return {
    image: kind === "digitalocean" ? "docker-20-04" : "docker-ce",
    size: kind === "digitalocean" ? "s-1vcpu-1gb" : "cx23",
    autoSize: kind === "digitalocean" ? digitalOceanSize : hetznerServerType,
    region: kind === "digitalocean" ? "nyc3" : "nbg1",
    diskSizeGb: kind === "digitalocean" ? 25 : 10,
    maxWorkers: 1,
    reuseWorker: false,
    pollIntervalMs: 100,
    waitTimeoutMs: 20_000,
    sshTimeoutMs: 15_000,
    dockerTimeoutMs: 15_000,
    idleTimeoutMs: 1_800_000,
    sshPort: 22,
    claimSettleMs: kind === "digitalocean" ? 0 : 150,
    statusPollMs: 50,
    connectRetryMs: 100,
    ...overrides,
  };
}

/** A run: its context, provider, pool and the progress lines it printed. */
export interface Run {
  /** The run context. */
  readonly ctx: TestContext;
  /** The provider client. */
  readonly provider: MachineProvider;
  /** The pool. */
  readonly pool: MachinePool;
  /** Progress lines. */
  readonly lines: string[];
}

/** Every run started since the last {@link takeRunLines}, for a failed test's report. */
const started: Run[] = [];

/** The progress lines of the runs started since the last call, one block per run. */
export function takeRunLines(): string {
  const text = started.map((run, i) =>
    `--- run ${i + 1} (${run.ctx.runId}):\n${run.lines.join("\n")}`
  ).join("\n");
  started.length = 0;
  return text;
}

/** A run of namespace `namespace` sharing `stateDir`. */
export async function startRun(
  kind: Kind,
  fake: FakeCloud,
  options: {
    namespace: string;
    stateDir: string;
    settings?: Partial<PoolSettings>;
    signal?: AbortSignal;
    runId?: string;
  },
): Promise<Run> {
  const base = await createTestContext({
    namespace: options.namespace,
    stateDir: options.stateDir,
    runId: options.runId,
  });
  const ctx = options.signal ? Object.assign(base, { signal: options.signal }) : base;
  const provider = providerFor(kind, fake, options.namespace);
  const lines: string[] = [];
  const pool = new MachinePool(provider, settingsFor(kind, options.settings), ctx, {
    progress: (line) => lines.push(line),
  });
  const run = { ctx, provider, pool, lines };
  started.push(run);
  return run;
}

/** What the fake still holds. */
export function leftovers(
  fake: FakeCloud,
): { machines: number; volumes: number; keys: number; sshd: number } {
  const f = fake as FakeDigitalOcean & FakeHetzner;
  const machines = fake instanceof FakeDigitalOcean
    ? fake.droplets.size
    : (fake as FakeHetzner).servers.size;
  return { machines, volumes: f.volumes.size, keys: f.keys.size, sshd: fake.liveMachineProcesses };
}
