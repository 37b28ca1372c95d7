/**
 * Shared set-up for the fly tests: the fake Machines API (tests/fakes/fly) on the local Docker
 * engine, started once per test file, with `FLY_API_URL` and `FLY_LOGS_URL` pointing the driver
 * at it. In CI a
 * missing engine fails the tests (tests/docker/engine_fixture.ts).
 *
 * @module
 */

import { FAKE_FLY_INSTANCE_LABEL, FakeFly } from "../fakes/fly/fake_fly.ts";
import { ignoreDocker } from "../docker/engine_fixture.ts";
import { createTestContext, type TestContext } from "../conformance/context.ts";
import { flyFactory } from "../../drivers/fly/factory.ts";
import type { Driver } from "../../drivers/contract.ts";

export { assertEngine, ignoreDocker, TEST_IMAGE } from "../docker/engine_fixture.ts";

/** The token the fake accepts. */
export const FAKE_TOKEN = "fly-test-token";

/**
 * Starts the fake and points `FLY_API_URL` at it (once per process); `maxWaitSeconds` is the
 * fake's cap on `wait` (Fly: 60 s), kept short so long tasks are cheap to test.
 */
export function startFake(maxWaitSeconds = 60): FakeFly {
  const fake = new FakeFly({ token: FAKE_TOKEN, maxWaitSeconds });
  Deno.env.set("FLY_API_URL", fake.url);
  Deno.env.set("FLY_LOGS_URL", fake.url);
  Deno.env.set("POCKETCI_FLY_BACKOFF_MS", "50");
  return fake;
}

/** A driver over the fake with the test token (ephemeral app unless `app` is given). */
export async function flyDriver(
  ctx: TestContext,
  config: Record<string, unknown> = {},
): Promise<Driver> {
  return await flyFactory.create({ token: FAKE_TOKEN, size: "shared-cpu-1x", ...config }, ctx);
}

/** A fresh context. */
export function context(): Promise<TestContext> {
  return createTestContext();
}

/** The containers, Docker volumes and networks `fake` made that are still on the engine. */
export async function fakeLeftovers(fake: FakeFly): Promise<string[]> {
  const list = async (args: string[]) => {
    const out = await new Deno.Command("docker", { args, stdout: "piped", stderr: "null" })
      .output();
    return new TextDecoder().decode(out.stdout).split("\n").filter((line) => line !== "");
  };
  const label = `${FAKE_FLY_INSTANCE_LABEL}=${fake.instance}`;
  return [
    ...await list(["ps", "-a", "-q", "--filter", `label=${label}`]),
    ...await list(["volume", "ls", "-q", "--filter", `label=${label}`]),
    ...await list(["network", "ls", "-q", "--filter", `label=${label}`]),
  ];
}

/** Whether the fly tests must be ignored (no engine, outside CI). */
export const ignoreFly: boolean = ignoreDocker;
