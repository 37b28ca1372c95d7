// deno-lint-ignore-file no-console -- pipelines print with console; the runner routes it to the run's output
// Log groups: nested, timed, folded by GitHub Actions, GitLab CI and Buildkite.
//   pocketci run examples/groups.ts --timestamps
import { group, pipeline, task } from "pocketci";

export default pipeline("groups", async () => {
  const shell = task("step").image("busybox");
  await group("build", async () => {
    await shell.name("compile").sh("echo compiled");
    console.log("build done"); // indented with the group's tasks; the event has its groupId
  });
  const checks = await group("checks", () =>
    // Concurrent groups: each task still carries its own group.
    Promise.all([
      group("unit", () => shell.name("unit").sh("sleep 0.2; echo unit passed")),
      group("lint", () => shell.name("lint").sh("echo lint passed")),
    ]));
  console.log(`checks: ${checks.map((result) => result.name).join(", ")}`);
});
