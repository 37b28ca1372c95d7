/**
 * The git repository a pipeline lives in, read from the files (no `git` program): the
 * nearest enclosing `.git` (a directory, or a file pointing at one as in worktrees and
 * submodules), its common git directory (shared by all worktrees), and the URL of its
 * `origin` remote from that directory's `config`, normalised so the SSH and HTTPS forms of
 * one repository agree.
 *
 * Synchronous on purpose: it serves the synchronous DSN resolution.
 *
 * @module
 */

import { dirname, isAbsolute, resolve } from "node:path";

/** What {@link findRepository} found. */
export interface RepositoryInfo {
  /** The working tree's root (the directory holding `.git`). */
  readonly root: string;
  /** The real path of the common git directory (the same for every worktree of a clone). */
  readonly commonDir: string;
  /** `remote.origin.url`, normalised by {@link normalizeRemoteUrl}; absent without one. */
  readonly remote?: string;
}

/** The repository enclosing `startDir` (absolute), or undefined outside any repository. */
export function findRepository(startDir: string): RepositoryInfo | undefined {
  let dir = resolve(startDir);
  while (true) {
    const dotGit = `${dir}/.git`;
    const info = lstat(dotGit);
    if (info?.isDirectory) return describe(dir, dotGit);
    if (info?.isFile) {
      const gitDir = pointedGitDir(dir, dotGit);
      if (gitDir !== undefined) return describe(dir, gitDir);
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function describe(root: string, gitDir: string): RepositoryInfo | undefined {
  const common = readText(`${gitDir}/commondir`)?.trim();
  const commonDir = common ? resolve(gitDir, common) : gitDir;
  let real: string;
  try {
    real = Deno.realPathSync(commonDir);
  } catch {
    return undefined;
  }
  const url = originUrl(readText(`${real}/config`) ?? "");
  const remote = url === undefined ? undefined : normalizeRemoteUrl(url);
  return { root, commonDir: real, ...(remote ? { remote } : {}) };
}

/** The git directory a `.git` file names (`gitdir: PATH`, relative to the file's directory). */
function pointedGitDir(dir: string, file: string): string | undefined {
  const match = /^gitdir:\s*(.+?)\s*$/m.exec(readText(file) ?? "");
  if (match === null) return undefined;
  return isAbsolute(match[1]) ? match[1] : resolve(dir, match[1]);
}

/** `remote.origin.url` from the text of a git config file (the last value wins, as in git). */
export function originUrl(config: string): string | undefined {
  let inOrigin = false;
  let url: string | undefined;
  for (const raw of config.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith("[")) {
      inOrigin = /^\[\s*remote\s+"origin"\s*\]$/i.test(line);
      continue;
    }
    if (!inOrigin) continue;
    const match = /^url\s*=\s*(.*?)\s*$/i.exec(line);
    if (match !== null) url = match[1].replace(/^"(.*)"$/, "$1");
  }
  return url;
}

/**
 * A remote URL reduced to `host/path` (host lowercased; user, password, port, scheme, a
 * trailing `.git` and slashes dropped), so `git@github.com:o/r.git`,
 * `ssh://git@github.com:22/o/r` and `https://token@github.com/o/r.git` all give
 * `github.com/o/r`. A local path stays a path (without a trailing `.git`).
 */
export function normalizeRemoteUrl(url: string): string {
  const text = url.trim();
  let host = "";
  let path = text;
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\/([^/]*)(\/.*)?$/i.exec(text);
  const scpLike = /^(?:[^@/:]+@)?([^/:]+):(?!\/\/)(.*)$/.exec(text);
  if (withScheme !== null && !/^file:/i.test(text)) {
    host = withScheme[1].replace(/^.*@/, "").replace(/:\d*$/, "");
    path = withScheme[2] ?? "";
  } else if (withScheme !== null) {
    path = withScheme[2] ?? "";
  } else if (scpLike !== null && !isAbsolute(text)) {
    host = scpLike[1];
    path = scpLike[2];
  }
  path = path.replace(/^\/*~?\/*/, "").replace(/\/+$/, "").replace(/\.git$/, "").replace(
    /\/+$/,
    "",
  );
  return host === "" ? `/${path}` : `${host.toLowerCase()}/${path}`;
}

function lstat(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch {
    return undefined;
  }
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}
