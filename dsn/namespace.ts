/**
 * The stable default namespace: `ci-` plus a short hash of the pipeline's absolute path.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { resolve } from "node:path";

/**
 * The default namespace for a pipeline at `pipelinePath` (resolved against `cwd`), or for
 * `cwd` itself when there is no pipeline. The same absolute path always gives the same
 * namespace, so worker pools are found again across runs.
 */
export function defaultNamespace(pipelinePath: string | undefined, cwd: string): string {
  const absolute = pipelinePath === undefined ? resolve(cwd) : resolve(cwd, pipelinePath);
  const digest = createHash("sha256").update(absolute).digest("hex");
  return `ci-${digest.slice(0, 10)}`;
}
