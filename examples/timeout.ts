// deno-lint-ignore-file no-console -- pipelines print with console; the runner routes it to the run's output
// A timeout counts from the task's start and stops the task (SIGTERM, then SIGKILL).
// The whole run can be limited too: pocketci run --timeout 5m ...
//   pocketci run examples/timeout.ts
import { pipeline, task, TaskError } from "pocketci";

export default pipeline("timeout", async () => {
  const started = Date.now();
  try {
    await task("slow").image("busybox").timeout("1s").sh("sleep 30");
  } catch (error) {
    if (!(error instanceof TaskError) || error.result.status !== "timeout") throw error;
    console.log(`slow: ${error.result.status} after ${Date.now() - started} ms`);
  }
  const tolerated = await task("tolerated").image("busybox").timeout("500ms").allowFailure().sh(
    "sleep 30",
  );
  console.log(`tolerated: ${tolerated.status}`);
});
