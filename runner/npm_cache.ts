/**
 * Whether an `npm:` package is already in Deno's cache, looked up without Deno and
 * without the network (the pipeline import scan refuses uncached packages).
 *
 * @module
 */

/** An `npm:` or `jsr:` specifier split into its parts. */
export interface PackageSpecifier {
  /** `npm` or `jsr`. */
  readonly registry: "npm" | "jsr";
  /** The package name (`zod`, `@types/node`). */
  readonly name: string;
  /** The version requirement as written (empty when none). */
  readonly version: string;
}

/** Splits `npm:@scope/name@^1/sub` (or `jsr:...`); undefined when it names no package. */
export function parsePackageSpecifier(specifier: string): PackageSpecifier | undefined {
  const match = /^(npm|jsr):\/?((?:@[^/@]+\/)?[^/@]+)(?:@([^/]*))?(?:\/.*)?$/.exec(specifier);
  if (match === null) return undefined;
  return { registry: match[1] as "npm" | "jsr", name: match[2], version: match[3] ?? "" };
}

/** Deno's npm cache folder for this environment (`$DENO_DIR/npm` or the platform default). */
export function npmCacheDir(env: Readonly<Record<string, string | undefined>>): string {
  if (env.DENO_DIR) return `${env.DENO_DIR}/npm`;
  const home = env.HOME ?? "";
  if (Deno.build.os === "darwin") return `${home}/Library/Caches/deno/npm`;
  if (Deno.build.os === "windows") return `${env.LOCALAPPDATA ?? home}/deno/npm`;
  return `${env.XDG_CACHE_HOME || `${home}/.cache`}/deno/npm`;
}

/** The folder Deno keeps a registry's packages in (`registry.npmjs.org`, `127.0.0.1_9`). */
export function registryFolder(registryUrl: string): string {
  const url = new URL(registryUrl);
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.hostname}${url.port ? `_${url.port}` : ""}${path}`;
}

type Version = readonly [number, number, number, string];

function parseVersion(text: string): Version | undefined {
  const match = /^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/.exec(text);
  if (match === null) return undefined;
  return [Number(match[1]), Number(match[2]), Number(match[3]), match[4] ?? ""];
}

function compare(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  if (a[3] === b[3]) return 0;
  if (a[3] === "") return 1;
  if (b[3] === "") return -1;
  return a[3] < b[3] ? -1 : 1;
}

/** A test for one comparator (`^1.2`, `>=2`, `1.x`), or undefined when it is not understood. */
function comparatorTest(text: string): ((version: Version) => boolean) | undefined {
  if (text === "" || text === "*" || text === "latest") return () => true;
  const match =
    /^(\^|~|>=|<=|>|<|=)?v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?$/
      .exec(text);
  if (match === null) return undefined;
  const operator = match[1] ?? "=";
  const parts = [match[2], match[3], match[4]];
  const wild = (part: string | undefined) => part === undefined || /^[xX*]$/.test(part);
  const firstWild = parts.findIndex(wild);
  const given = firstWild === -1 ? 3 : firstWild;
  const numbers = parts.map((part) => wild(part) ? 0 : Number(part));
  const base: Version = [numbers[0], numbers[1], numbers[2], given === 3 ? match[5] ?? "" : ""];
  const bump = (index: number): Version =>
    index === 0
      ? [base[0] + 1, 0, 0, ""]
      : index === 1
      ? [base[0], base[1] + 1, 0, ""]
      : [base[0], base[1], base[2] + 1, ""];
  const between = (low: Version, high: Version) => (version: Version) =>
    compare(version, low) >= 0 && compare(version, high) < 0;
  switch (operator) {
    case "=":
      if (given === 0) return () => true;
      return given === 3
        ? (version) => compare(version, base) === 0
        : between(base, bump(given - 1));
    case "^":
      if (given === 0) return () => true;
      return between(
        base,
        bump(base[0] !== 0 || given === 1 ? 0 : base[1] !== 0 || given === 2 ? 1 : 2),
      );
    case "~":
      if (given === 0) return () => true;
      return between(base, bump(given === 1 ? 0 : 1));
    case ">=":
      return (version) => compare(version, base) >= 0;
    case ">":
      return given === 3
        ? (version) => compare(version, base) > 0
        : (version) => compare(version, bump(Math.max(given - 1, 0))) >= 0;
    case "<=":
      return given === 3
        ? (version) => compare(version, base) <= 0
        : (version) => compare(version, bump(Math.max(given - 1, 0))) < 0;
    default:
      return (version) => compare(version, base) < 0;
  }
}

/**
 * Whether `version` (a cached version folder's name) meets `requirement`
 * (`^1.2`, `~1.2.3`, `1.x`, `>=1 <2`, `1 || 2`, empty for any). A requirement this
 * does not understand is met by any version: Deno decides then, with the network
 * closed to it.
 */
export function satisfies(version: string, requirement: string): boolean {
  const parsed = parseVersion(version);
  if (parsed === undefined) return false;
  const alternatives = requirement.trim().split("||");
  return alternatives.some((alternative) => {
    const comparators = alternative.trim().replace(/(\^|~|>=|<=|>|<|=)\s+/g, "$1").split(/\s+/);
    return comparators.every((comparator) => {
      const test = comparatorTest(comparator);
      // Pre-releases meet only requirements that name one (as in npm).
      if (parsed[3] !== "" && !comparator.includes("-")) return false;
      return test === undefined ? true : test(parsed);
    });
  });
}

/** Whether `npm:` package `name` has a cached version meeting `requirement`. */
export async function npmPackageCached(
  name: string,
  requirement: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<boolean> {
  const registry = registryFolder(env.NPM_CONFIG_REGISTRY || "https://registry.npmjs.org/");
  const dir = `${npmCacheDir(env)}/${registry}/${name}`;
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory && satisfies(entry.name, requirement)) return true;
    }
  } catch {
    // No folder: not cached.
  }
  return false;
}
