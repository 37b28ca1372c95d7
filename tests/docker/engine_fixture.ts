/**
 * Shared set-up for the docker tests: the local engine must answer (in CI a missing engine is a
 * failure, never a skip), and the test image must be present (built by `.ci/setup_docker.sh`).
 *
 * @module
 */

/** The image the docker tests use (built locally from Debian's busybox-static). */
export const TEST_IMAGE = "busybox:latest";

/** The image whose ENTRYPOINT serves on the port its CMD names (built by .ci/setup_docker.sh). */
export const SERVICE_IMAGE = "pocketci-test/service:latest";

/** Why the local engine cannot be used, or `undefined` when it can. */
export async function engineProblem(): Promise<string | undefined> {
  try {
    const conn = await Deno.connect({ transport: "unix", path: "/var/run/docker.sock" });
    conn.close();
  } catch (error) {
    return `no Docker engine at /var/run/docker.sock (${
      (error as Error).message
    }); run .ci/setup_docker.sh`;
  }
  const out = await new Deno.Command("docker", {
    args: ["image", "inspect", TEST_IMAGE],
    stdout: "null",
    stderr: "null",
  })
    .output().catch(() => undefined);
  if (!out?.success) return `image ${TEST_IMAGE} is missing; run .ci/setup_docker.sh`;
  return undefined;
}

const problem = await engineProblem();

/**
 * `true` when the docker tests must be ignored: only outside CI and only when the engine is
 * missing. In CI (CI=true) the tests run and fail with the reason.
 */
export const ignoreDocker: boolean = problem !== undefined && Deno.env.get("CI") !== "true";

/** Throws the reason the engine is unusable (for the first test in CI). */
export function assertEngine(): void {
  if (problem) throw new Error(problem);
}

/**
 * Whether this engine can start privileged containers. Engines that themselves run in a
 * container without every capability (like this project's CI machines) cannot: runc fails with
 * "unable to apply caps", and the driver reports that as an UnsupportedError for `privileged`.
 */
export async function enginePrivileged(): Promise<boolean> {
  const out = await new Deno.Command("docker", {
    args: ["run", "--rm", "--privileged", "--network", "none", TEST_IMAGE, "true"],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (out.success) return true;
  const stderr = new TextDecoder().decode(out.stderr);
  if (/unable to apply caps/.test(stderr)) return false;
  throw new Error(`probing privileged containers failed unexpectedly: ${stderr.trim()}`);
}
