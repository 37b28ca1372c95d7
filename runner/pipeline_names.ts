/**
 * Names the runner child's permissions must match before the pipeline process
 * exists (kept apart from `pipeline_process.ts` so the launcher loads nothing more).
 *
 * @module
 */

/**
 * Environment variables the runner passes to the pipeline process (Deno needs them
 * to find its cache; PATH for programs run with `--allow-run`) besides those the
 * user granted with `--allow-env`; the runner process must be allowed to read them.
 */
export const PIPELINE_ENV_NAMES: readonly string[] = [
  "PATH",
  "HOME",
  "DENO_DIR",
  "XDG_CACHE_HOME",
  "NPM_CONFIG_REGISTRY",
];

/** The socket's name in the runner's private directory. */
export const SOCKET_NAME = "pipeline.sock";
