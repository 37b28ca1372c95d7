// deno-lint-ignore-file no-console -- pipelines print with console; the runner routes it to the run's output
// Tasks started together run together (cap them with --parallelism N). A partial
// builder is a template: every method returns a new builder, and name() gives each
// copy its own name in the output and the summary.
//   pocketci run examples/parallel.ts --parallelism 2
import { pipeline, task } from "pocketci";

export default pipeline("parallel", async () => {
  const shell = task("check").image("busybox");
  const started = Date.now();
  const results = await Promise.all(
    ["lint", "unit", "types", "docs"].map((name) =>
      shell.name(name).env({ CHECK: name }).sh('sleep 1; echo "$CHECK passed"')
    ),
  );
  for (const result of results) console.log(`${result.name}: ${result.stdout.trim()}`);
  console.log(`4 one-second checks took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
