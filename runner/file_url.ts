/**
 * File URL and path conversion that survives spaces, `%`, `#` and `?` in paths.
 *
 * @module
 */

/** The `file://` URL of an absolute path. */
export function toFileUrl(path: string): string {
  return "file://" + path.split("/").map((part) => encodeURIComponent(part)).join("/");
}

/** The absolute path of a `file://` URL. */
export function fromFileUrl(url: string | URL): string {
  return decodeURIComponent(new URL(url).pathname);
}
