/**
 * The agent's sources for the guest: the module graph of `agent/main.ts` (relative imports
 * only; the agent imports nothing from npm), copied into the share with the repository's
 * layout kept, so the guest's Deno runs them as they are.
 *
 * @module
 */

const ROOT = new URL("../../", import.meta.url);
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/g;

/** The agent's module graph as paths relative to the repository root, sorted. */
export async function agentModules(entry = "agent/main.ts"): Promise<string[]> {
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const path = queue.pop()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const text = await Deno.readTextFile(new URL(path, ROOT));
    for (const match of text.matchAll(IMPORT)) {
      const resolved = new URL(match[1], new URL(path, ROOT)).href.slice(ROOT.href.length);
      if (resolved.startsWith("..") || resolved.startsWith("/")) {
        throw new Error(`the agent imports ${match[1]} from outside the repository (${path})`);
      }
      queue.push(resolved);
    }
    const bare = /from\s+"((?:npm|jsr|https?):[^"]+)"/.exec(text);
    if (bare) {
      throw new Error(`${path} imports ${bare[1]}: the guest agent must import only local files`);
    }
  }
  return [...seen].sort();
}

/** Copies the agent's modules into `dir` (e.g. `<share>/.pocketci-agent/src`). */
export async function copyAgentSources(dir: string): Promise<string[]> {
  const modules = await agentModules();
  for (const path of modules) {
    const target = `${dir}/${path}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(new URL(path, ROOT), target);
  }
  return modules;
}
