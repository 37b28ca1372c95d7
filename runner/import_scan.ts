/**
 * The static import scan: before Deno loads or type-checks a pipeline, every
 * module it would load is found and checked here, because Deno reads statically
 * imported files without permission checks and prints a line of any file that
 * fails to parse (`import "/etc/shadow"` would show the file in the error).
 *
 * Starting at the pipeline file, each local module's specifiers
 * ({@link findSpecifiers}) are checked and local ones followed:
 *
 * - `./`, `../`, `/` and `file:` specifiers: the real path (symlinks resolved,
 *   before anything is read) must lie in the pipeline's directory or a directory
 *   granted with `--allow-read`, or be one of PocketCI's own DSL modules;
 * - the DSL's names (`pocketci`, `jsr:@pocketci/pocketci`...) and `node:` built-ins: allowed;
 * - `npm:` packages: allowed when already in Deno's cache or named by `--allow-import`;
 *   `jsr:` packages only when named by `--allow-import`;
 * - `http:`, `https:`, `data:`, `blob:` and any other scheme: refused;
 * - bare names: ignored (they resolve only through PocketCI's import map, which
 *   holds nothing but the DSL, so they cannot load anything else);
 * - a specifier with a backslash escape or a `${}` substitution: refused.
 *
 * @module
 */

import { fromFileUrl, toFileUrl } from "./file_url.ts";
import { inside, normalizeAbsolute, realPathOfExisting } from "./host_paths.ts";
import { DSL_ENTRY, DSL_SPECIFIERS } from "./import_map.ts";
import { findSpecifiers, type FoundSpecifier, moduleTexts } from "./import_specifiers.ts";
import { npmPackageCached, parsePackageSpecifier } from "./npm_cache.ts";

/** Options for {@link scanImports}. */
export interface ImportScanOptions {
  /** Packages named with `--allow-import` (`npm:zod`, `jsr:@std/path`): allowed uncached. */
  readonly allowImports?: readonly string[];
  /** Directories granted with `--allow-read` (imports from them are allowed too). */
  readonly readRoots?: readonly string[];
  /** The environment that locates Deno's cache (default: this process's). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** More modules to start from (absolute paths), scanned with the same rules. */
  readonly moreEntries?: readonly string[];
  /** The pipeline's directory (default: the first module's). */
  readonly baseDir?: string;
}

/** What the scan found. */
export interface ImportScan {
  /** Real paths of the pipeline's own modules, the pipeline file first (the DSL's not included). */
  readonly localFiles: readonly string[];
  /** Whether an allowed import needs `--allow-import` (so Deno may fetch it). */
  readonly fetches: boolean;
}

/** A refused import; the message is one line naming the file, line, specifier and rule. */
export class ImportRefusedError extends Error {
  /** The real path of the module with the refused import. */
  readonly importer: string;
  /** Creates the error. */
  constructor(message: string, importer: string) {
    super(message);
    this.name = "ImportRefusedError";
    this.importer = importer;
  }
}

/** At most this many modules are followed (a symlink loop makes endless distinct URLs). */
const MAX_MODULES = 10_000;

const REMOTE_SCHEMES: Record<string, string> = {
  "http:": "remote http(s) imports are not allowed",
  "https:": "remote http(s) imports are not allowed",
  "data:": "data: URL imports are not allowed",
  "blob:": "blob: URL imports are not allowed",
};

let dslFiles: Promise<ReadonlySet<string>> | undefined;

/** The real paths of PocketCI's DSL modules: `mod.ts` and every local module it imports. */
export function dslModules(): Promise<ReadonlySet<string>> {
  dslFiles ??= (async () => {
    const files = new Set<string>();
    const queue = [toFileUrl(DSL_ENTRY)];
    for (let url; (url = queue.pop()) !== undefined;) {
      const real = await Deno.realPath(fromFileUrl(url));
      if (files.has(real)) continue;
      files.add(real);
      for (const text of moduleTexts(await Deno.readFile(real))) {
        for (const { specifier } of findSpecifiers(text)) {
          if (/^\.\.?\//.test(specifier)) queue.push(new URL(specifier, url).href);
        }
      }
    }
    return files;
  })();
  return dslFiles;
}

/** This process's environment, or none where it may not read it (the runner child). */
function environment(): Record<string, string> {
  try {
    return Deno.env.toObject();
  } catch {
    return {};
  }
}

/** The `--allow-import` package name a specifier needs (`npm:zod`, `jsr:@std/path`). */
function grantName(specifier: string): string | undefined {
  const parsed = parsePackageSpecifier(specifier);
  return parsed && `${parsed.registry}:${parsed.name}`;
}

/**
 * Scans the pipeline at `pipelinePath` (absolute) and every local module it imports;
 * throws an {@link ImportRefusedError} at the first import that is not allowed.
 */
export async function scanImports(
  pipelinePath: string,
  options: ImportScanOptions = {},
): Promise<ImportScan> {
  const env = options.env ?? environment();
  const granted = new Set(options.allowImports ?? []);
  const pipelineReal = await Deno.realPath(pipelinePath);
  const pipelineDir = options.baseDir === undefined
    ? pipelineReal.slice(0, pipelineReal.lastIndexOf("/")) || "/"
    : await realPathOfExisting(normalizeAbsolute(options.baseDir));
  const roots = [pipelineDir];
  for (const root of options.readRoots ?? []) {
    roots.push(await realPathOfExisting(normalizeAbsolute(root)).catch(() => root));
  }
  const dsl = await dslModules();
  const allowedText = `a pipeline may import files in its directory ${pipelineDir}${
    roots.length > 1 ? " or one granted with --allow-read" : ""
  }, PocketCI's DSL ("pocketci"), node: built-ins and npm: packages already in Deno's cache`;

  const localFiles: string[] = [];
  let fetches = false;
  const seen = new Set<string>();
  const queue: { url: string; real: string }[] = [];
  for (const entry of [pipelineReal, ...(options.moreEntries ?? [])]) {
    const url = toFileUrl(await Deno.realPath(entry));
    if (seen.has(url)) continue;
    seen.add(url);
    queue.push({ url, real: fromFileUrl(url) });
  }

  // `importer` is the URL relative specifiers resolve against, `shownAs` the file named in errors.
  const checkOne = async (
    found: FoundSpecifier,
    importer: string,
    shownAs: string,
    importerReal: string,
  ) => {
    const { specifier } = found;
    const where = `${shownAs}:${found.line}`;
    const refuse = (why: string): never => {
      throw new ImportRefusedError(`${where}: import "${specifier}" refused: ${why}`, importerReal);
    };
    if (found.unreadable !== undefined) {
      refuse(`${found.unreadable}; write the specifier as a plain string literal`);
    }
    if (found.kind === "lib") {
      if (!/^[A-Za-z0-9.-]+$/.test(specifier)) refuse("not a TypeScript library name");
      return;
    }
    if (DSL_SPECIFIERS.includes(specifier)) return;
    let url: URL;
    if (/^(\.\.?)?\//.test(specifier)) {
      url = new URL(specifier, importer);
    } else {
      try {
        url = new URL(specifier);
      } catch {
        return; // a bare name: only PocketCI's import map could resolve it
      }
    }
    switch (url.protocol) {
      case "file:":
        break;
      case "node:":
        return;
      case "npm:":
      case "jsr:": {
        const parsed = parsePackageSpecifier(url.href);
        const name = grantName(url.href);
        if (parsed === undefined || name === undefined) refuse("not a package specifier");
        if (granted.has(name!)) {
          fetches = true;
          return;
        }
        if (
          parsed!.registry === "npm" && await npmPackageCached(parsed!.name, parsed!.version, env)
        ) {
          return;
        }
        refuse(
          `${
            parsed!.registry === "npm"
              ? "the package is not in Deno's cache"
              : "jsr: packages must be allowed explicitly"
          } and pipelines cannot fetch packages; allow it with --allow-import=${name}`,
        );
        return;
      }
      default:
        refuse(
          `${
            REMOTE_SCHEMES[url.protocol] ?? `the ${url.protocol} scheme is not supported`
          }; ${allowedText}`,
        );
    }
    if (url.hostname !== "" && url.hostname !== "localhost") {
      refuse(`a file: URL with a host is not allowed; ${allowedText}`);
    }
    let real: string;
    let lexical: string;
    try {
      lexical = normalizeAbsolute(decodeURIComponent(url.pathname));
      real = await realPathOfExisting(lexical);
    } catch (error) {
      // Where this process may not even look, the path is outside what it could allow.
      if (error instanceof Deno.errors.NotCapable) {
        return refuse(`its path ${lexical!} is outside the pipeline's directory; ${allowedText}`);
      }
      return refuse(`cannot resolve its real path (${(error as Error).name}); ${allowedText}`);
    }
    if (dsl.has(real)) return;
    if (!roots.some((root) => inside(root, real))) {
      refuse(`its real path ${real} is outside the pipeline's directory; ${allowedText}`);
    }
    url.hash = "";
    const key = url.href;
    if (seen.has(key)) return;
    seen.add(key);
    if (seen.size > MAX_MODULES) refuse(`more than ${MAX_MODULES} modules (a symlink loop?)`);
    queue.push({ url: key, real });
  };

  for (let module; (module = queue.shift()) !== undefined;) {
    let bytes: Uint8Array;
    try {
      if (!(await Deno.stat(module.real)).isFile) continue;
      bytes = await Deno.readFile(module.real);
    } catch {
      continue; // missing or unreadable: Deno fails on it without showing any content
    }
    if (!localFiles.includes(module.real)) localFiles.push(module.real);
    if (/\.json$/i.test(module.real)) continue; // JSON holds no imports
    // Deno resolves against the URL as imported; the real location is checked too, in
    // case a loader resolves against it.
    const bases = [...new Set([module.url, toFileUrl(module.real)])];
    const shownAs = fromFileUrl(module.url);
    for (const text of moduleTexts(bytes)) {
      for (const found of findSpecifiers(text)) {
        for (const base of bases) await checkOne(found, base, shownAs, module.real);
      }
    }
  }
  return { localFiles, fetches };
}
