/**
 * The syntax of a driver string: `NAME`, `NAME://NAMESPACE?k=v&k=v` or `NAME:k=v,k=v`.
 * No driver-specific validation happens here beyond knowing which parameters are list-valued.
 *
 * @module
 */

import { listParameterNames, parameterNames } from "./schemas.ts";
import { isSecretName, isSecretParamName } from "./secret_names.ts";
import { closest } from "./suggest.ts";
import { DRIVER_NAMES, type DriverName, DsnError, type ParsedDsn } from "./types.ts";

const KNOWN = `known drivers: ${DRIVER_NAMES.join(", ")}`;
const FORMS = "NAME, NAME://NAMESPACE?key=value&... or NAME:key=value,...";

/**
 * Parses a driver string into its driver, form, namespace (URL authority) and parameters.
 * Throws `DsnError` with a one-line message that never echoes a parameter value.
 */
export function parseDsn(text: string): ParsedDsn {
  const dsn = text.trim();
  if (dsn === "") {
    throw new DsnError(
      `empty driver string: give a driver name (an empty string never means native); ${KNOWN}`,
    );
  }
  const name = /^[A-Za-z0-9_.-]*/.exec(dsn)![0];
  const rest = dsn.slice(name.length);
  if (name === "") {
    if (rest.startsWith(":")) throw new DsnError(`empty driver name before ":"; ${KNOWN}`);
    throw new DsnError(`not a driver string: expected ${FORMS}`);
  }
  if (rest !== "" && !rest.startsWith(":") && !rest.startsWith("?")) {
    throw new DsnError(`not a driver string: expected ${FORMS}`);
  }
  const driver = driverNamed(name);
  if (rest.startsWith("?")) throw notAForm(driver, rest.slice(1));
  if (rest === "" || rest === ":") return { driver, form: "plain", params: {} };
  if (rest.startsWith("://")) return parseUrlForm(driver, rest.slice(3));
  return { driver, form: "colon", params: parseColonParams(driver, rest.slice(1)) };
}

function driverNamed(name: string): DriverName {
  const lower = name.toLowerCase();
  const driver = DRIVER_NAMES.find((known) => known === lower);
  if (driver !== undefined) return driver;
  throw new DsnError(unknownDriverText(name));
}

/**
 * The one-line error for a driver name PocketCI does not know: the name (unless it is long
 * enough to be something pasted by mistake), the closest driver name and the known ones.
 */
export function unknownDriverText(name: string): string {
  const shown = name.length <= 24 ? `"${name}"` : `(a ${name.length}-character name)`;
  const guess = closest(name.toLowerCase(), DRIVER_NAMES);
  return `unknown driver ${shown}${guess ? ` (did you mean "${guess}"?)` : ""}; ${KNOWN}`;
}

function notAForm(driver: DriverName, query: string): DsnError {
  const pairs = query.split("&").filter((piece) => piece !== "").map((piece) => {
    const equals = piece.indexOf("=");
    if (equals <= 0) return "key=value";
    const key = piece.slice(0, equals);
    return isSecretName(key) ? `${key}=***` : piece;
  });
  const shown = pairs.length > 0 ? pairs : ["key=value"];
  return new DsnError(
    `a driver string needs "://" or ":" before its parameters: write ` +
      `${driver}://?${shown.join("&")} or ${driver}:${shown.join(",")}`,
  );
}

function parseUrlForm(driver: DriverName, afterScheme: string): ParsedDsn {
  if (afterScheme.includes("#")) {
    throw new DsnError(
      `a fragment ("#...") is not allowed in a driver string; write "#" in a value as %23`,
    );
  }
  const authorityEnd = afterScheme.search(/[/?]/);
  const authority = authorityEnd < 0 ? afterScheme : afterScheme.slice(0, authorityEnd);
  const tail = authorityEnd < 0 ? "" : afterScheme.slice(authorityEnd);
  if (tail.startsWith("/")) {
    throw new DsnError(
      `a path after the namespace is not allowed: write ${driver}://NAMESPACE?key=value ` +
        `(a "/" inside a parameter value is fine)`,
    );
  }
  checkNamespace(authority);
  const params = parseQuery(tail.slice(1));
  return authority === ""
    ? { driver, form: "url", params }
    : { driver, form: "url", namespace: authority, params };
}

/** Throws unless `authority` is empty or a valid namespace (a DNS label). */
export function checkNamespace(authority: string): void {
  if (authority === "") return;
  const rule = "the namespace (URL authority) must be a DNS label: lowercase letters, digits " +
    "and '-', at most 63 characters, starting and ending with a letter or digit";
  if (authority.includes("@")) {
    throw new DsnError(
      `${rule}; it must not contain a user ("user@"): pass credentials as parameters`,
    );
  }
  if (authority.includes(":")) throw new DsnError(`${rule}; it must not contain a port (":1234")`);
  if (/[A-Z]/.test(authority)) {
    throw new DsnError(`${rule}; it must not contain uppercase letters: write it in lowercase`);
  }
  if (authority.length > 63) {
    throw new DsnError(`${rule}; it has ${authority.length} characters`);
  }
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(authority)) {
    throw new DsnError(`${rule}; it contains another character or starts or ends with '-'`);
  }
}

function parseQuery(query: string): Record<string, string> {
  const params: Record<string, string> = {};
  const pieces = query.split("&");
  pieces.forEach((piece, index) => {
    if (piece === "") return;
    const equals = piece.indexOf("=");
    if (equals < 0) throw missingEquals(piece, index);
    const key = decode(piece.slice(0, equals), undefined);
    const value = decode(piece.slice(equals + 1), key);
    addParam(params, key);
    params[key] = value;
  });
  return params;
}

function decode(text: string, key: string | undefined): string {
  try {
    return decodeURIComponent(text);
  } catch {
    const where = key === undefined ? "a parameter name" : `the value of parameter "${key}"`;
    throw new DsnError(
      `invalid percent-encoding in ${where}: "%" must start %XX (UTF-8); write a literal % as %25`,
    );
  }
}

function parseColonParams(driver: DriverName, body: string): Record<string, string> {
  const known = parameterNames(driver);
  const lists = listParameterNames(driver);
  const params: Record<string, string> = {};
  let absorbing: string | undefined;
  body.split(",").forEach((piece, index) => {
    if (piece === "") return;
    const equals = piece.indexOf("=");
    const key = equals > 0 ? piece.slice(0, equals) : undefined;
    const startsParameter = key !== undefined && (known.includes(key) || isSecretParamName(key));
    if (absorbing !== undefined && !startsParameter) {
      params[absorbing] = params[absorbing] === "" ? piece : `${params[absorbing]},${piece}`;
      return;
    }
    if (equals < 0) throw missingEquals(piece, index);
    addParam(params, piece.slice(0, equals));
    params[piece.slice(0, equals)] = piece.slice(equals + 1);
    absorbing = lists.includes(piece.slice(0, equals)) ? piece.slice(0, equals) : undefined;
  });
  return params;
}

function addParam(params: Record<string, string>, key: string): void {
  if (key === "") {
    throw new DsnError(`a parameter has an empty name: write key=value`);
  }
  if (Object.hasOwn(params, key)) {
    throw new DsnError(`parameter "${key}" is given twice; give each parameter once`);
  }
}

function missingEquals(piece: string, index: number): DsnError {
  const looksLikeName = /^[a-z][a-z0-9_]{0,30}$/.test(piece) && !isSecretName(piece);
  const which = looksLikeName ? `"${piece}"` : `#${index + 1}`;
  return new DsnError(`parameter ${which} has no "=": write key=value`);
}
