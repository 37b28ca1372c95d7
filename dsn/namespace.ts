/**
 * The default namespace, stable for a repository rather than for a pipeline file's path, so
 * a renamed pipeline or another checkout directory (a CI job's) finds the same caches:
 *
 * 1. inside a git repository with an `origin` remote: `ci-<repo>-` plus a hash of the
 *    remote URL normalised so its SSH and HTTPS forms agree (every clone and worktree of
 *    the repository, wherever it is checked out, and every pipeline in it share it);
 * 2. inside a git repository without `origin`: `ci-<repo>-` plus a hash of the real path of
 *    its common git directory (shared by its worktrees; another clone differs);
 * 3. elsewhere: `ci-` plus a hash of the pipeline's absolute path (of `cwd` without one).
 *
 * `<repo>` is the last part of the remote URL (else the root directory's name), in
 * lowercase letters, digits and `-`, at most 30 characters.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { dirname, resolve } from "node:path";
import { findRepository } from "./repository.ts";

/**
 * The default namespace for a pipeline at `pipelinePath` (resolved against `cwd`), or for
 * `cwd` itself when there is no pipeline (see the module doc for the rule).
 */
export function defaultNamespace(pipelinePath: string | undefined, cwd: string): string {
  const absolute = pipelinePath === undefined ? resolve(cwd) : resolve(cwd, pipelinePath);
  const repository = findRepository(pipelinePath === undefined ? absolute : dirname(absolute));
  if (repository === undefined) return `ci-${hash(absolute)}`;
  const identity = repository.remote !== undefined
    ? `remote:${repository.remote}`
    : `gitdir:${repository.commonDir}`;
  const name = (repository.remote ?? repository.root).split("/").filter(Boolean).pop() ?? "";
  const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, 30).replace(
    /^-+|-+$/g,
    "",
  );
  return slug === "" ? `ci-${hash(identity)}` : `ci-${slug}-${hash(identity)}`;
}

/** Which rule {@link defaultNamespace} applies for these arguments, in words for `pocketci dsn`. */
export function defaultNamespaceRule(pipelinePath: string | undefined, cwd: string): string {
  const absolute = pipelinePath === undefined ? resolve(cwd) : resolve(cwd, pipelinePath);
  const repository = findRepository(pipelinePath === undefined ? absolute : dirname(absolute));
  if (repository?.remote !== undefined) return "from the git remote origin";
  if (repository !== undefined) return "from the git repository (it has no origin remote)";
  return `stable per ${pipelinePath === undefined ? "directory" : "pipeline file"}`;
}

function hash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 10);
}
