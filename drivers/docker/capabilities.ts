/**
 * The docker driver's capabilities (kept free of imports so the registry can read them without
 * loading dockerode).
 *
 * @module
 */

import type { DriverCapabilities } from "../contract.ts";

/** Everything the docker driver can honour. */
export const DOCKER_CAPABILITIES: DriverCapabilities = {
  liveStreaming: true,
  separateStderr: true,
  stdin: true,
  sandboxes: true,
  user: true,
  privileged: true,
  limits: true,
  caches: true,
  images: true,
};
