/**
 * Which driver string a command uses: `--driver` (or the DSN argument), else
 * `$POCKETCI_DRIVER`, else `native`. An explicitly empty value is never read as "not given":
 * `--driver="$UNSET_VAR"` or `POCKETCI_DRIVER="$UNSET_VAR"` must not run a container pipeline
 * on the host. Kept free of the schemas so `pocketci run` can decide before loading them.
 *
 * @module
 */

import { DRIVER_NAMES, DsnError } from "./types.ts";

/** Where a driver string came from. */
export type DriverSource = "--driver" | "$POCKETCI_DRIVER" | "default";

/** The driver string to resolve and where it came from. */
export interface DriverChoice {
  /** The driver string (an empty flag is passed on: parsing rejects it). */
  readonly text: string;
  /** Where it came from, for error messages. */
  readonly source: DriverSource;
}

/**
 * The driver string from `flag`, else `env.POCKETCI_DRIVER`, else `native`. Throws
 * `DsnError` when `POCKETCI_DRIVER` is set but empty (or only blanks).
 */
export function chooseDriver(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): DriverChoice {
  if (flag !== undefined) return { text: flag, source: "--driver" };
  const fromEnv = env.POCKETCI_DRIVER;
  if (fromEnv === undefined) return { text: "native", source: "default" };
  if (fromEnv.trim() === "") {
    throw new DsnError(
      `$POCKETCI_DRIVER is set but empty: set it to a driver name or unset it ` +
        `(an empty value never means native); known drivers: ${DRIVER_NAMES.join(", ")}`,
    );
  }
  return { text: fromEnv, source: "$POCKETCI_DRIVER" };
}
