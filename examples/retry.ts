// deno-lint-ignore-file no-console -- pipelines print with console; the runner routes it to the run's output
// Retries, and steps that run on failure or always, in plain TypeScript.
//   pocketci run examples/retry.ts
import { pipeline, task, TaskError, volume } from "pocketci";

export default pipeline("retry", async () => {
  // A flaky step: fails twice, then succeeds. Each attempt is logged; the result counts them.
  const state = await volume("state");
  const flaky = await task("flaky").image("busybox").mount(state, "state")
    .retry(3, { delay: "200ms", backoff: 2 })
    .sh(
      'n=$(( $(cat state/count 2>/dev/null || echo 0) + 1 )); echo $n > state/count; echo "attempt $n"; [ "$n" -ge 3 ]',
    );
  console.log(`flaky: ${flaky.status} after ${flaky.attempts} attempts`);

  // `when` picks what is retried: here a failure would be, a timeout is not.
  const slow = await task("slow").image("busybox").timeout("300ms").allowFailure()
    .retry(2, { when: ["failure"] })
    .sh("sleep 10");
  console.log(`slow: ${slow.status} after ${slow.attempts} attempt(s)`);

  // `if: failure()` and `if: always()`: catch and finally around awaited tasks.
  try {
    await task("smoke-test").image("busybox").sh("echo 'smoke test failed' >&2; exit 1");
  } catch (error) {
    if (!(error instanceof TaskError)) throw error;
    await task("collect-diagnostics").image("busybox").sh(
      `echo "smoke-test ended: ${error.result.status} (exit ${error.result.code})"`,
    );
  } finally {
    await task("cleanup").image("busybox").sh("echo cleaned up");
  }
});
