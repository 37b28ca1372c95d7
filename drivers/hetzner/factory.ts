/**
 * The hetzner driver's registry entry: Hetzner Cloud servers running Docker in a worker pool per
 * namespace (`drivers/machines/`), every container operation delegated to the docker driver over
 * SSH. `HETZNER_API_URL` overrides the API base URL (tests, proxies).
 *
 * @module
 */

import type { DriverFactory } from "../contract.ts";
import { machineFactory } from "../machines/factory.ts";

/** The hetzner driver's factory. */
export const hetznerFactory: DriverFactory = machineFactory("hetzner");
