/**
 * `group(name, fn)`: a named, nestable log group. Tasks and sandbox calls started while
 * `fn` runs (however deep in its awaits) belong to the group: the context travels with
 * `node:async_hooks`' AsyncLocalStorage, so concurrent groups keep their own tasks apart.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { currentHost } from "./host.ts";
import { checkName } from "./validate.ts";

const STORAGE_KEY = Symbol.for("pocketci.groups");

/** One storage per process, even if the DSL were loaded twice. */
function storage(): AsyncLocalStorage<string> {
  const global = globalThis as Record<symbol, unknown>;
  global[STORAGE_KEY] ??= new AsyncLocalStorage<string>();
  return global[STORAGE_KEY] as AsyncLocalStorage<string>;
}

/** The runner's ID of the group the calling code runs in, if any. */
export function currentGroupId(): string | undefined {
  return storage().getStore();
}

/**
 * Runs `fn` as a log group named `name` and returns what it returns. The text output shows
 * the group's start and end (with its duration, indented when nested), `--json` gets
 * `group.start`/`group.end` events, and inside GitHub Actions, GitLab CI or Buildkite the
 * group folds with their own syntax. A throw from `fn` ends the group as failed and is
 * rethrown unchanged.
 */
export async function group<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
  checkName("group", name);
  if (typeof fn !== "function") {
    throw new Error('group() needs a name and a function: group("tests", async () => { ... })');
  }
  const host = currentHost();
  const parentId = currentGroupId();
  const { id } = await host.startGroup(parentId === undefined ? { name } : { name, parentId });
  let outcome: "success" | "failure" = "failure";
  try {
    const value = await storage().run(id, fn);
    outcome = "success";
    return value;
  } finally {
    await host.endGroup(id, outcome);
  }
}
