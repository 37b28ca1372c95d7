/**
 * Shared set-up for the k8s tests: the local dockerd (pods of the fake API server run on it) and,
 * for the tests that prove the fake with the real client, `kubectl`. In CI (CI=true) a missing
 * component fails the tests; elsewhere they are ignored.
 *
 * @module
 */

import { engineProblem } from "../docker/engine_fixture.ts";

/** Where kubectl is. */
export const KUBECTL = "/usr/bin/kubectl";

async function kubectlProblem(): Promise<string | undefined> {
  const out = await new Deno.Command(KUBECTL, {
    args: ["version", "--client"],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => undefined);
  return out?.success
    ? undefined
    : `kubectl is missing at ${KUBECTL}; apt-get install kubernetes-client`;
}

const engine = await engineProblem();
const kubectlMissing = await kubectlProblem();
const inCi = Deno.env.get("CI") === "true";

/** `true` when the fake-cluster tests must be ignored (outside CI, without dockerd). */
export const ignoreKube: boolean = engine !== undefined && !inCi;

/** `true` when the kubectl tests must be ignored (outside CI, without dockerd or kubectl). */
export const ignoreKubectl: boolean = (engine ?? kubectlMissing) !== undefined && !inCi;

/** Throws why the fake cluster cannot run (CI runs the tests and fails here). */
export function assertKube(): void {
  if (engine) throw new Error(engine);
}

/** Throws why the kubectl tests cannot run. */
export function assertKubectl(): void {
  const problem = engine ?? kubectlMissing;
  if (problem) throw new Error(problem);
}

/** The result of one kubectl run. */
export interface KubectlResult {
  /** Exit code. */
  readonly code: number;
  /** Standard output. */
  readonly stdout: string;
  /** Standard error. */
  readonly stderr: string;
}

/** Runs kubectl against `kubeconfig` (with its own cache directory under `home`). */
export async function kubectl(
  kubeconfig: string,
  home: string,
  args: readonly string[],
  stdin?: string,
): Promise<KubectlResult> {
  const child = new Deno.Command(KUBECTL, {
    args: [...args],
    env: { KUBECONFIG: kubeconfig, HOME: home, KUBECACHEDIR: `${home}/cache` },
    clearEnv: true,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}
