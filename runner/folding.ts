/**
 * The CI systems' own log folding, for `group()` in the text output: GitHub Actions
 * (`::group::`), GitLab CI (collapsible sections) and Buildkite (`---` headers), detected
 * from the environment `pocketci run` itself runs in (never the pipeline's).
 *
 * @module
 */

/** A CI system whose log viewer folds sections. */
export type FoldingStyle = "github" | "gitlab" | "buildkite";

/** The folding style of the CI system the environment `env` belongs to, if any. */
export function detectFolding(
  env: Readonly<Record<string, string | undefined>>,
): FoldingStyle | undefined {
  if (env.GITHUB_ACTIONS === "true") return "github";
  if (env.GITLAB_CI === "true") return "gitlab";
  if (env.BUILDKITE === "true") return "buildkite";
  return undefined;
}

/** Checks a folding style that crossed a process boundary. */
export function checkFolding(value: unknown): FoldingStyle | undefined {
  return value === "github" || value === "gitlab" || value === "buildkite" ? value : undefined;
}

/** A title on one line: control characters (a newline would end the marker) become spaces. */
function oneLine(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f]+/g, " ").trim();
}

/** GitLab's section names allow letters, digits, `_`, `.` and `-`. */
function sectionName(id: string): string {
  return `pocketci_${id.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
}

/** The line that opens a folded section titled `name` (`id`: the group's, unique in the run). */
export function foldStart(style: FoldingStyle, id: string, name: string, now: Date): string {
  switch (style) {
    case "github":
      // Workflow command data: %, CR and LF are escaped (oneLine leaves none of the latter).
      return `::group::${oneLine(name).replace(/%/g, "%25")}\n`;
    case "gitlab":
      return `\x1b[0Ksection_start:${Math.floor(now.getTime() / 1000)}:${
        sectionName(id)
      }[collapsed=true]\r\x1b[0K${oneLine(name)}\n`;
    case "buildkite":
      return `--- ${oneLine(name)}\n`;
  }
}

/**
 * The line that closes the section opened for `id`. Buildkite has no end marker: a new
 * expanded header (`+++ pocketci`) ends it, after `^^^ +++` (which expands the section
 * before it) when the group failed.
 */
export function foldEnd(style: FoldingStyle, id: string, failed: boolean, now: Date): string {
  switch (style) {
    case "github":
      return "::endgroup::\n";
    case "gitlab":
      return `\x1b[0Ksection_end:${Math.floor(now.getTime() / 1000)}:${sectionName(id)}\r\x1b[0K\n`;
    case "buildkite":
      return `${failed ? "^^^ +++\n" : ""}+++ pocketci\n`;
  }
}
