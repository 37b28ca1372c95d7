/**
 * Which parameter names hold secrets, including names that look like a misspelled secret
 * (a `tokn=` may well hold a token), so their values are never printed.
 *
 * @module
 */

import { secretParameterNames } from "./schemas.ts";
import { closest } from "./suggest.ts";

const SECRET_WORDS = /token|secret|passw|credential|api_?key|auth/i;

/** Whether a parameter named `name` may hold a secret and must have its value redacted. */
export function isSecretName(name: string): boolean {
  const secrets = secretParameterNames();
  return secrets.includes(name) || SECRET_WORDS.test(name) || closest(name, secrets) !== undefined;
}

/**
 * Whether `name` is a secret parameter name or a likely misspelling of one (`tokn`), which is
 * never folded into a list-valued parameter, so its value cannot end up in printed tags or labels.
 */
export function isSecretParamName(name: string): boolean {
  const secrets = secretParameterNames();
  return secrets.includes(name) || closest(name, secrets) !== undefined;
}
