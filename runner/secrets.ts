/**
 * Collecting the secrets a run may use: `--secret NAME` (from the host
 * environment) and `--secret-file FILE` (dotenv format).
 *
 * @module
 */

import { MIN_SECRET_LENGTH } from "./secret_forms.ts";

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Parses a dotenv-style secret file: `NAME=value` lines, `#` comments, an optional
 * `export ` prefix, `"double quoted"` values with `\n` escapes (for multi-line
 * values) and `'single quoted'` literal values. Throws naming the bad line (never its value).
 */
export function parseSecretFile(text: string, fileName: string): Map<string, string> {
  const secrets = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const match = /^(?:export\s+)?([^=\s]+)\s*=\s*(.*)$/.exec(line);
    if (match === null || !NAME.test(match[1])) {
      throw new Error(
        `${fileName}:${
          index + 1
        }: expected NAME=value with NAME made of letters, digits and underscores`,
      );
    }
    let value = match[2];
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1).replace(
        /\\(["\\nrt])/g,
        (_, c: string) => c === "n" ? "\n" : c === "r" ? "\r" : c === "t" ? "\t" : c,
      );
    } else if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) {
      value = value.slice(1, -1);
    }
    secrets.set(match[1], value);
  });
  return secrets;
}

/** Reads `--secret NAME` values from the environment; throws naming a missing one. */
export function secretsFromEnv(
  names: readonly string[],
  env: (name: string) => string | undefined,
): Map<string, string> {
  const secrets = new Map<string, string>();
  for (const name of names) {
    if (!NAME.test(name)) {
      throw new Error(`--secret ${name}: a secret name is made of letters, digits and underscores`);
    }
    const value = env(name);
    if (value === undefined) {
      throw new Error(
        `--secret ${name}: the environment variable ${name} is not set; export it or use --secret-file`,
      );
    }
    secrets.set(name, value);
  }
  return secrets;
}

/**
 * What is wrong with secrets too short to mask reliably (shorter than
 * {@link MIN_SECRET_LENGTH}: masked, a 1-3 character value hides that text everywhere, as in
 * `the ***-ray bo***`), one message per secret, naming it but never its value. Empty values
 * (nothing to mask) are not listed.
 */
export function shortSecrets(
  secrets: ReadonlyMap<string, string>,
  dsnSecrets: readonly string[] = [],
): string[] {
  const problem = (what: string) =>
    `${what} is shorter than ${MIN_SECRET_LENGTH} characters, too short to mask reliably`;
  const isShort = (value: string) => value !== "" && value.length < MIN_SECRET_LENGTH;
  const messages = [...secrets].filter(([, value]) => isShort(value)).map(([name]) =>
    problem(`secret ${name}`)
  );
  if (dsnSecrets.some(isShort)) {
    messages.push(
      problem("a secret of the driver (a token or URL password, from the DSN or the environment)"),
    );
  }
  return messages;
}
