// deno-lint-ignore-file no-console -- pipelines print with console; the runner routes it to the run's output
// A cache survives runs of the same pipeline: run this twice and the second run
// finds what the first one stored. `pocketci gc --cache-ttl=7d` removes unused caches.
//   pocketci run examples/cache.ts
import { cache, pipeline, task } from "pocketci";

export default pipeline("cache", async () => {
  const downloads = await cache("downloads");
  const result = await task("fetch").image("busybox").mount(downloads, "cache").sh(`
    if [ -f cache/artifact.txt ]; then
      echo "cache hit: $(cat cache/artifact.txt)"
    else
      echo "built at $(date)" > cache/artifact.txt
      echo "cache miss: stored a new artifact"
    fi`);
  console.log(result.stdout.trim());
});
