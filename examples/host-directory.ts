// deno-lint-ignore-file no-console -- pipelines print with console; the runner routes it to the run's output
// A host directory goes into a volume, a task builds from it, and the result comes
// back to the host: `./site` in, `./site-out/` out (both next to this file).
//   pocketci run examples/host-directory.ts
import { pipeline, task, volume } from "pocketci";

export default pipeline("host-directory", async () => {
  const src = await volume("src", { from: "./site", exclude: ["drafts"] });
  // Relative mount paths and workDir are both relative to the task's default working
  // directory, so this task works inside the mounted volume.
  const build = task("build").image("busybox").mount(src, "src").workDir("src");

  await build.sh(`
    mkdir -p dist
    for page in *.md; do
      { echo "<html><body><pre>"; cat "$page"; echo "</pre></body></html>"; } > "dist/\${page%.md}.html"
    done
    ls dist`);

  const built = await src.readFiles(["dist/index.html"]);
  console.log(`index.html has ${built["dist/index.html"].length} characters`);
  await src.exportTo("./site-out", { path: "dist" });
});
