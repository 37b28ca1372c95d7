/**
 * `secret(NAME)`: a reference the runner resolves from the secrets the user allowed.
 *
 * @module
 */

import type { SecretRef } from "./types.ts";

/**
 * A reference to the secret `name`, for use as an environment value. The runner
 * resolves it from `--secret NAME` or `--secret-file FILE`; pipeline code never
 * sees the value, and the value is masked in all output.
 */
export function secret(name: string): SecretRef {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new Error(
      `invalid secret name "${name}": use letters, digits and underscores, like an environment variable`,
    );
  }
  return Object.freeze({ pocketciSecret: name });
}

/** Whether a value is a secret reference. */
export function isSecretRef(value: unknown): value is SecretRef {
  return typeof value === "object" && value !== null &&
    typeof (value as { pocketciSecret?: unknown }).pocketciSecret === "string";
}
