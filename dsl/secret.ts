/**
 * `secret(NAME)`: a reference the runner resolves from the secrets the user allowed.
 *
 * @module
 */

import type { SecretRef } from "./types.ts";
import { checkSecretName } from "./validate.ts";

export { isSecretRef } from "./validate.ts";

/**
 * A reference to the secret `name`, for use as an environment value. The runner
 * resolves it from `--secret NAME` or `--secret-file FILE`; pipeline code never
 * sees the value, and the value is masked in all output.
 */
export function secret(name: string): SecretRef {
  return Object.freeze({ pocketciSecret: checkSecretName(name) });
}
