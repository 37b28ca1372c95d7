/**
 * Exclude patterns for packing a directory, in the spirit of `.gitignore`:
 *
 * - a pattern without a slash (`node_modules`, `*.log`) matches an entry of that name at any depth;
 * - a pattern with a slash (`dist/cache`, `/build`, `src/**\/*.tmp`) matches the path relative to the root;
 * - `*` matches within one path segment, `?` one character, `**` any number of segments;
 * - a trailing slash (`out/`) matches directories only.
 *
 * An excluded directory is skipped with everything below it.
 *
 * @module
 */

/** A compiled set of exclude patterns. */
export interface ExcludeMatcher {
  /** True when the entry at `relativePath` (slash-separated, no leading `./`) is excluded. */
  excludes(relativePath: string, isDirectory: boolean): boolean;
}

interface CompiledPattern {
  readonly regexp: RegExp;
  readonly basenameOnly: boolean;
  readonly directoriesOnly: boolean;
}

/** Compiles exclude patterns; an empty pattern is an error. */
export function compileExcludes(patterns: readonly string[]): ExcludeMatcher {
  const compiled = patterns.map(compilePattern);
  return {
    excludes(relativePath: string, isDirectory: boolean): boolean {
      const base = relativePath.slice(relativePath.lastIndexOf("/") + 1);
      return compiled.some((pattern) =>
        (!pattern.directoriesOnly || isDirectory) &&
        pattern.regexp.test(pattern.basenameOnly ? base : relativePath)
      );
    },
  };
}

function compilePattern(pattern: string): CompiledPattern {
  let text = pattern.trim();
  if (text === "") throw new Error("an exclude pattern must not be empty");
  const directoriesOnly = text.endsWith("/");
  text = text.replace(/\/+$/, "").replace(/^\.\//, "");
  const anchored = text.startsWith("/");
  text = text.replace(/^\/+/, "");
  const basenameOnly = !anchored && !text.includes("/");
  return { regexp: new RegExp(`^${globToRegExpSource(text)}$`), basenameOnly, directoriesOnly };
}

function globToRegExpSource(glob: string): string {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i];
    if (char === "*" && glob[i + 1] === "*") {
      const slashAfter = glob[i + 2] === "/";
      out += slashAfter ? "(?:.*/)?" : ".*";
      i += slashAfter ? 2 : 1;
    } else if (char === "*") {
      out += "[^/]*";
    } else if (char === "?") {
      out += "[^/]";
    } else {
      out += char.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
  }
  return out;
}
