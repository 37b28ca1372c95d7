// deno-lint-ignore-file no-console -- pipelines print with console; the runner routes it to the run's output
// A cache keyed by a lockfile, as GitHub Actions' actions/cache (key, restore-keys) or GitLab's
// cache:key:files: the first run misses, the next one hits the exact key, and once the lockfile
// changes the new key starts as a copy of the newest "deps-" cache (the old one stays as it was).
//   pocketci run examples/keyed-cache.ts
import { cache, hashFiles, pipeline, task } from "pocketci";

export default pipeline("keyed-cache", async () => {
  const deps = await cache("deps", {
    key: ["deps", await hashFiles("keyed-cache.lock")],
    restoreKeys: ["deps-"],
  });
  console.log(
    `cache deps: ${deps.hit}${deps.restoredKey ? ` (from ${deps.restoredKey})` : ""}`,
  );
  const result = await task("install").image("busybox").mount(deps, "deps")
    .env({ KEY: deps.key ?? "" }).sh(`
      if [ -f deps/installed-for ]; then
        echo "reusing what was installed for $(cat deps/installed-for)"
      else
        echo "installing from scratch"
      fi
      echo "$KEY" > deps/installed-for`);
  console.log(result.stdout.trim());
});
