/**
 * Keeping secrets out of output: the redacted config `pocketci dsn` prints, and the real
 * secret values a runner must mask in task output.
 *
 * @module
 */

import { describeParameters } from "./schemas.ts";
import { isSecretName } from "./secret_names.ts";
import type { ResolvedDsn } from "./types.ts";

const REDACTED = "***";
const secretsOf = new WeakMap<ResolvedDsn, readonly string[]>();

/** Records the real secret values behind `resolved` (its `params` are already redacted). */
export function rememberSecrets(resolved: ResolvedDsn, values: readonly string[]): void {
  secretsOf.set(resolved, values);
}

/** The password in `scheme://user:password@host`, if any. */
export function urlPassword(value: string): string | undefined {
  const match = /^[a-z][a-z0-9+.-]*:\/\/[^/@?#:]*:([^/@?#]*)@/i.exec(value);
  return match?.[1] ? match[1] : undefined;
}

/** `scheme://user:password@host` → `scheme://user:***@host`; other values unchanged. */
export function hidePassword(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@?#:]*:)[^/@?#]*@/i, `$1${REDACTED}@`);
}

/** Redacts a parameter value given in the DSN, by its name. */
export function redactParam(key: string, value: string): string {
  if (value !== "" && isSecretName(key)) return REDACTED;
  return hidePassword(value);
}

/** Secret values at least this long are hidden wherever they occur inside a longer text. */
const MIN_INSIDE = 3;

/**
 * `text` with every occurrence of each secret value, and of its percent-encoded form, as
 * `***` (a value shorter than 3 characters only when it is the whole text).
 */
export function redactValues(text: string, secrets: readonly string[]): string {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (secret === "") continue;
    forms.add(secret);
    forms.add(encodeURIComponent(secret));
  }
  let out = text;
  for (const form of [...forms].sort((a, b) => b.length - a.length)) {
    if (form.length >= MIN_INSIDE) out = out.split(form).join(REDACTED);
    else if (out === form) out = REDACTED;
  }
  return out;
}

function redactDeep(value: unknown, secrets: readonly string[]): unknown {
  if (typeof value === "string") return redactValues(value, secrets);
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, secrets));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map((
        [key, item],
      ) => [redactValues(key, secrets), redactDeep(item, secrets)]),
    );
  }
  return value;
}

/** The namespace as it may be printed: a secret value repeated in it is `***`. */
export function shownNamespace(resolved: ResolvedDsn): string {
  return redactValues(resolved.namespace, secretValues(resolved));
}

/**
 * The configuration as `pocketci dsn --json` prints it: a secret that is set is `"***"`,
 * one that is not set is null, a password inside a URL is `***`, and a secret value repeated
 * in any other parameter (`tags=`, `image=`) is `***` there too; everything else as resolved.
 */
export function redactConfig(resolved: ResolvedDsn): Record<string, unknown> {
  const secret = new Set(
    describeParameters(resolved.driver).filter((p) => p.secret).map((p) => p.name),
  );
  const redacted: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(resolved.config)) {
    if (secret.has(key)) {
      redacted[key] = value === null || value === undefined ? null : REDACTED;
    } else {
      redacted[key] = typeof value === "string" ? hidePassword(value) : value;
    }
  }
  return redactDeep(redacted, secretValues(resolved)) as Record<string, unknown>;
}

/**
 * Every real secret value in `resolved` (secret config values, values of DSN parameters whose
 * names are or look like secrets, passwords inside URLs), so a runner can mask them in output.
 */
export function secretValues(resolved: ResolvedDsn): string[] {
  const values = new Set<string>(secretsOf.get(resolved) ?? []);
  const secret = new Set(
    describeParameters(resolved.driver).filter((p) => p.secret).map((p) => p.name),
  );
  for (const [key, value] of Object.entries(resolved.config)) {
    if (typeof value !== "string" || value === "") continue;
    if (secret.has(key)) values.add(value);
    const password = urlPassword(value);
    if (password !== undefined) values.add(password);
  }
  return [...values];
}
