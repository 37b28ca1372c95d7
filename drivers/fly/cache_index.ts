/**
 * The local index of Fly cache volumes: a Fly volume name holds only hashes (30 characters at
 * most), so the logical name and key of each cache are kept in `<stateDir>/fly-caches.json` for
 * `listCaches`.
 *
 * @module
 */

/** Volume name -> logical name and key. */
export type CacheIndex = Record<string, { readonly name: string; readonly key?: string }>;

function path(stateDir: string): string {
  return `${stateDir}/fly-caches.json`;
}

/** Reads the index (empty when missing or unreadable). */
export async function readCacheIndex(stateDir: string): Promise<CacheIndex> {
  try {
    return JSON.parse(await Deno.readTextFile(path(stateDir))) as CacheIndex;
  } catch {
    return {};
  }
}

/** Adds one cache (written through a temp file and a rename). */
export async function addCacheIndex(
  stateDir: string,
  volume: string,
  name: string,
  key: string | undefined,
): Promise<void> {
  const index = await readCacheIndex(stateDir);
  if (index[volume]?.name === name && index[volume]?.key === key) return;
  index[volume] = { name, ...(key === undefined ? {} : { key }) };
  await Deno.mkdir(stateDir, { recursive: true });
  const tmp = `${path(stateDir)}.${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(tmp, JSON.stringify(index));
  await Deno.rename(tmp, path(stateDir));
}
