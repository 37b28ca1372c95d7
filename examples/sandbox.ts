// deno-lint-ignore-file no-console -- pipelines print with console; the runner routes it to the run's output
// A sandbox is a long-lived environment: state persists between calls, and each
// call takes its own settings. `await using` closes it at the end of the block.
//   pocketci run examples/sandbox.ts
import { pipeline, sandbox } from "pocketci";

export default pipeline("sandbox", async () => {
  await using box = await sandbox("dev").image("busybox").env({ PROJECT: "demo" }).start();

  await box.sh("echo 'kept between calls' > notes.txt");
  const notes = await box.run("cat", "notes.txt");
  console.log(`notes: ${notes.stdout.trim()}`);

  await box.sh("mkdir -p reports");
  const call = await box.env({ WHO: "call" }).workDir("reports").sh(
    'echo "$WHO in $(basename "$(pwd)") for $PROJECT"',
  );
  console.log(call.stdout.trim());

  const [a, b] = await Promise.all([box.sh("sleep 0.5; echo a"), box.sh("sleep 0.5; echo b")]);
  console.log(`concurrent calls: ${a.stdout.trim()} ${b.stdout.trim()}`);

  const failed = await box.allowFailure().sh("exit 2");
  console.log(`allowed failure exited with ${failed.code}`);
});
