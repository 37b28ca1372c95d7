/**
 * Image references, checked by the runner before any driver sees them: the Docker
 * reference grammar (distribution/reference), so a name the engine cannot parse
 * (`/etc/passwd`, `busybox; rm`) is the task's error instead of a malformed engine
 * request.
 *
 * @module
 */

// host[:port] or [IPv6][:port]; domain components may hold uppercase letters.
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?`;
// Path components are lowercase letters and digits joined by `.`, `_`, `__` or dashes.
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const TAG = "[\\w][\\w.-]{0,127}";
const DIGEST = "sha256:[a-f0-9]{64}";
const REFERENCE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);

/** The longest name the engine accepts (the registry host and path, without tag or digest). */
const MAX_NAME = 255;

/** The form a reference must have, for error messages. */
export const IMAGE_REFERENCE_FORM =
  "[REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST] with a lowercase NAME, such as busybox, busybox:1.36 or ghcr.io/org/app:v1";

/** A reference split into its parts. */
export interface ImageReference {
  /** Registry host and repository path, such as `ghcr.io/org/app` or `busybox`. */
  readonly name: string;
  /** The tag, when given. */
  readonly tag?: string;
  /** The digest (`sha256:...`), when given. */
  readonly digest?: string;
}

/** Parses a reference; `undefined` when it does not follow the grammar. */
export function parseImageReference(image: string): ImageReference | undefined {
  const match = REFERENCE.exec(image);
  if (match === null || match[1].length > MAX_NAME) return undefined;
  return {
    name: match[1],
    ...(match[2] === undefined ? {} : { tag: match[2] }),
    ...(match[3] === undefined ? {} : { digest: match[3] }),
  };
}

function quoted(image: string, mask: (text: string) => string): string {
  // Masked before it is cut: a cut must never show part of a secret.
  const shown = mask(JSON.stringify(image));
  return shown.length > 120 ? `${shown.slice(0, 117)}..."` : shown;
}

/** What is wrong with a reference that does not parse, in a few words (or undefined). */
function reason(image: string): string | undefined {
  if (image === "") return "it is empty";
  if (/\s/.test(image)) return "it contains whitespace";
  // deno-lint-ignore no-control-regex -- control characters are what this looks for
  if (/[\x00-\x1f\x7f]/.test(image)) return "it contains control characters";
  if (image.startsWith("/")) return "it starts with /: a file path is not an image";
  const withoutDigest = image.split("@")[0];
  const lastSlash = withoutDigest.lastIndexOf("/");
  const colon = withoutDigest.indexOf(":", lastSlash + 1);
  const path = withoutDigest.slice(0, colon === -1 ? undefined : colon);
  const firstSlash = path.indexOf("/");
  const first = firstSlash === -1 ? "" : path.slice(0, firstSlash);
  const isDomain = /[.:]/.test(first) || first === "localhost" || first !== first.toLowerCase();
  const repository = isDomain ? path.slice(firstSlash + 1) : path;
  if (repository !== repository.toLowerCase()) return "the repository name must be lowercase";
  if (image.includes("@") && !/@sha256:[a-f0-9]{64}$/.test(image)) {
    return "the digest must be sha256: and 64 lowercase hex digits";
  }
  return undefined;
}

/**
 * Checks an image reference; returns a one-line error naming the image (passed through
 * `mask` before it is shortened) and the expected form, or `undefined` when it is valid.
 */
export function imageReferenceError(
  image: unknown,
  mask: (text: string) => string = (text) => text,
): string | undefined {
  if (typeof image !== "string") return `the image must be a string, such as "busybox"`;
  if (parseImageReference(image) !== undefined) return undefined;
  const why = reason(image);
  return `image ${quoted(image, mask)} is not a valid image reference${
    why === undefined ? "" : ` (${why})`
  }: use ${IMAGE_REFERENCE_FORM}`;
}
