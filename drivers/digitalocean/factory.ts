/**
 * The digitalocean driver's registry entry: droplets running Docker in a worker pool per
 * namespace (`drivers/machines/`), every container operation delegated to the docker driver over
 * SSH. `DIGITALOCEAN_API_URL` overrides the API base URL (tests, proxies).
 *
 * @module
 */

import type { DriverFactory } from "../contract.ts";
import { machineFactory } from "../machines/factory.ts";

/** The digitalocean driver's factory. */
export const digitaloceanFactory: DriverFactory = machineFactory("digitalocean");
