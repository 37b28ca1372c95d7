// deno-lint-ignore-file no-console -- pipelines print with console; the runner routes it to the run's output
// Secrets are resolved by the runner from what you allow, never by pipeline code,
// and masked everywhere PocketCI prints or records them.
//   API_TOKEN=t0ps3cret pocketci run examples/secrets.ts --secret API_TOKEN
import { pipeline, secret, task } from "pocketci";

export default pipeline("secrets", async () => {
  const result = await task("deploy").image("busybox").env({ TOKEN: secret("API_TOKEN") })
    .sh('echo "deploying with token $TOKEN"; echo "token length: ${#TOKEN}"');
  console.log(`the pipeline sees: ${result.stdout.split("\n")[0]}`);
});
