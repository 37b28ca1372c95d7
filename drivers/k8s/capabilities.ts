/**
 * What the k8s driver honours. Output is the pod log, where the kubelet merges stdout and
 * stderr into one stream: `separateStderr` is false (all output arrives as stdout).
 *
 * @module
 */

import type { DriverCapabilities } from "../contract.ts";

/** The k8s driver's capabilities. */
export const K8S_CAPABILITIES: DriverCapabilities = Object.freeze({
  liveStreaming: true,
  separateStderr: false,
  stdin: true,
  sandboxes: true,
  user: true,
  privileged: true,
  limits: true,
  caches: true,
  images: true,
});
