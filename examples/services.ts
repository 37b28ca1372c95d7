// deno-lint-ignore-file no-console -- pipelines print with console; the runner routes it to the run's output
// A server the tests talk to, as GitLab CI's `services:`, GitHub Actions' `services:` or Dagger's
// `asService()`: busybox httpd started as a service, ready once its /health answers, used by a
// test task, and stopped at the end of the `await using` block (or when the pipeline ends).
// On docker, k8s and fly the task reaches it by its name (web:8080); on native the
// service is a host process and the task uses the port it listens on (hostPort). With
// --service-driver=docker a native run's service is a container instead: the native task
// reaches it at 127.0.0.1:hostPort(8080), the port docker published (its name does not resolve
// on the host).
//   pocketci run examples/services.ts
//   pocketci run --driver=native examples/services.ts -- 18080   (busybox on the host, a free port)
//   pocketci run --driver=native --service-driver=docker examples/services.ts
//   pocketci run --driver=k8s examples/services.ts
//   pocketci run --driver=fly:app=my-ci examples/services.ts
import { pipeline, service, task } from "pocketci";

export default pipeline("services", async (ctx) => {
  const port = Number(ctx.args[0] ?? "8080");
  // The service is a host process only when services run on the native driver.
  const hostService = ctx.serviceDriver === "native";
  const hostTask = ctx.driver === "native";
  const root = hostService ? "www" : "/www";
  const httpd = hostService ? `busybox httpd -f -v -p 127.0.0.1:${port}` : `httpd -f -v -p ${port}`;
  // Only a task on the host needs the port published there (k8s publishes none: its tasks are
  // pods that reach the service by name).
  const base = service("web").image("busybox");
  await using web = await (hostTask ? base.ports(port) : base)
    .run(
      "sh",
      "-c",
      `mkdir -p ${root} && echo '{"status":"ok"}' > ${root}/health &&
      echo "starting in a second" && sleep 1 && exec ${httpd} -h ${root}`,
    )
    .ready({ http: `http://localhost:${port}/health` }, { timeout: "30s", interval: "200ms" })
    .start();
  const url = hostTask
    ? `http://127.0.0.1:${web.hostPort(port)}/health`
    : `http://web:${port}/health`;
  const check = await task("test").image("busybox")
    .sh(`${hostTask ? "busybox " : ""}wget -qO- ${url}`);
  console.log(`the test task got ${check.stdout.trim()} from ${url}`);
  const logs = (await web.logs()).split("\n");
  console.log(`the service printed ${logs.length} lines, the first: ${logs[0]}`);
});
