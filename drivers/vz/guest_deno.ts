/**
 * The Deno binary the guest runs the agent with: Linux, glibc, the guest's architecture
 * (arm64 on Apple Silicon, x86_64 on Intel Macs), the same version as the host's Deno. It
 * comes from the npm packages `@deno/linux-arm64-glibc` / `@deno/linux-x64-glibc`: an
 * installed copy in `node_modules` when there is one, else a copy cached in `cache_dir`,
 * else fetched with `npm pack` into the cache (the npm registry is the only download).
 *
 * @module
 */

import { readTar } from "../archive/mod.ts";
import { DriverError } from "../contract.ts";

/** The guest architectures vz runs. */
export type GuestArch = "aarch64" | "x86_64";

/** The npm package carrying Deno for `arch`. */
export function denoPackage(arch: GuestArch): string {
  return arch === "aarch64" ? "@deno/linux-arm64-glibc" : "@deno/linux-x64-glibc";
}

/** Where the binary is cached for `version` and `arch`. */
export function cachedDenoPath(cacheDir: string, version: string, arch: GuestArch): string {
  return `${cacheDir}/deno-${version}-linux-${arch}/deno`;
}

/** The places tried before fetching, in order. */
export function denoCandidates(
  cacheDir: string,
  version: string,
  arch: GuestArch,
  repoRoot = new URL("../../", import.meta.url).pathname,
): string[] {
  return [
    `${repoRoot}node_modules/${denoPackage(arch)}/deno`,
    cachedDenoPath(cacheDir, version, arch),
  ];
}

/** Finds or fetches the guest's Deno; resolves with its path. */
export async function guestDeno(
  cacheDir: string,
  arch: GuestArch,
  version: string = Deno.version.deno,
  progress: (line: string) => void = () => {},
): Promise<string> {
  for (const candidate of denoCandidates(cacheDir, version, arch)) {
    const info = await Deno.stat(candidate).catch(() => undefined);
    if (info?.isFile && await packageVersionMatches(candidate, version)) return candidate;
  }
  const target = cachedDenoPath(cacheDir, version, arch);
  const dir = target.slice(0, target.lastIndexOf("/"));
  await Deno.mkdir(dir, { recursive: true });
  const scratch = await Deno.makeTempDir({ dir: cacheDir, prefix: ".deno-fetch-" });
  try {
    const spec = `${denoPackage(arch)}@${version}`;
    progress(`vz: fetching ${spec} with npm for the guest`);
    let result: Deno.CommandOutput;
    try {
      result = await new Deno.Command("npm", {
        args: ["pack", spec, "--pack-destination", scratch, "--silent"],
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (error) {
      throw new DriverError(
        "unavailable",
        `npm is needed once to fetch ${spec} (the guest's Deno); install Node.js or put the binary at ${target}`,
        { cause: error },
      );
    }
    if (result.code !== 0) {
      const line = new TextDecoder().decode(result.stderr).trim().split("\n").at(-1);
      throw new DriverError("unavailable", `npm pack ${spec} failed: ${line}`);
    }
    const tgz = (await Array.fromAsync(Deno.readDir(scratch))).find((e) => e.name.endsWith(".tgz"));
    if (tgz === undefined) throw new DriverError("failed", `npm pack ${spec} produced no tarball`);
    await extractDeno(`${scratch}/${tgz.name}`, `${scratch}/deno`);
    await Deno.chmod(`${scratch}/deno`, 0o755);
    await Deno.rename(`${scratch}/deno`, target);
    return target;
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

/** Writes `package/deno` of an npm tarball to `destination`. */
export async function extractDeno(tgz: string, destination: string): Promise<void> {
  const file = await Deno.open(tgz);
  const stream = file.readable.pipeThrough(new DecompressionStream("gzip"));
  let found = false;
  for await (const entry of readTar(stream)) {
    if (entry.path === "package/deno" && entry.type === "file") {
      const out = await Deno.open(destination, { write: true, create: true, truncate: true });
      try {
        for await (const chunk of entry.body()) await out.write(chunk);
      } finally {
        out.close();
      }
      found = true;
    }
  }
  if (!found) throw new DriverError("failed", `${tgz} has no package/deno`);
}

/** A node_modules copy must be the host's version (package.json beside it); a cached one is. */
async function packageVersionMatches(binary: string, version: string): Promise<boolean> {
  const manifest = binary.replace(/deno$/, "package.json");
  const text = await Deno.readTextFile(manifest).catch(() => undefined);
  if (text === undefined) return true;
  try {
    return JSON.parse(text).version === version;
  } catch {
    return false;
  }
}
