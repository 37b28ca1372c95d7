// deno-lint-ignore-file no-console -- pipelines print with console; the runner routes it to the run's output
// A non-zero exit rejects with TaskError unless the task allows failure; either way
// the result says what happened.
//   pocketci run examples/allow-failure.ts
import { pipeline, task, TaskError } from "pocketci";

export default pipeline("allow-failure", async () => {
  const flaky = await task("optional-check").image("busybox").allowFailure().sh(
    "echo warning >&2; exit 3",
  );
  console.log(`optional-check: status=${flaky.status} code=${flaky.code}`);

  try {
    await task("required-check").image("busybox").sh("exit 1");
  } catch (error) {
    if (!(error instanceof TaskError)) throw error;
    console.log(`required-check rejected: ${error.message} (status ${error.result.status})`);
  }
});
