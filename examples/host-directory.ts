// deno-lint-ignore-file no-console -- pipelines print with console; the runner routes it to the run's output
// A host directory goes into a volume, a task builds from it, and the result comes
// back to the host: `./site` in, `./site-out/` out (both next to this file).
//   pocketci run examples/host-directory.ts
import { pipeline, task, volume } from "pocketci";

export default pipeline("host-directory", async () => {
  const src = await volume("src", { from: "./site", exclude: ["drafts"] });
  // A relative mount path is relative to the task's working directory.
  const build = task("build").image("busybox").mount(src, "src");

  await build.sh(`
    cd src
    mkdir -p dist
    for page in *.md; do
      { echo "<html><body><pre>"; cat "$page"; echo "</pre></body></html>"; } > "dist/\${page%.md}.html"
    done
    ls dist`);

  const built = await src.readFiles(["dist/index.html"]);
  console.log(`index.html has ${built["dist/index.html"].length} characters`);
  await src.exportTo("./site-out", { path: "dist" });
});
