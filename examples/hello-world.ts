// deno-lint-ignore-file no-console -- pipelines print with console; the runner routes it to the run's output
// The smallest pipeline: one task, its output checked by the pipeline itself.
//   pocketci run examples/hello-world.ts
import { pipeline, task } from "pocketci";

export default pipeline("hello-world", async (ctx) => {
  const greet = await task("greet").image("busybox").run("echo", "hello", "from", ctx.driver);
  if (!greet.stdout.startsWith("hello")) throw new Error(`unexpected output: ${greet.stdout}`);

  const env = await task("env").image("busybox").env({ GREETING: "hi" }).sh(
    'echo "$GREETING, CI=$CI"',
  );
  console.log(`the task said: ${env.stdout.trim()}`);
});
