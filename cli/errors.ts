/**
 * Errors the CLI turns into one line on stderr and an exit code.
 *
 * @module
 */

/** Bad flags or arguments: nothing ran. Exit code 2. */
export class UsageError extends Error {
  /** Creates a usage error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
