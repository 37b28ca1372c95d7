/**
 * The pipeline conformance suite on the k8s driver, against the fake API server of
 * `tests/fakes/kube` (pods on the local dockerd), through the CLI with the driver's narrowed
 * permissions.
 *
 * @module
 */

import { K8S_CAPABILITIES } from "../../drivers/k8s/capabilities.ts";
import { LABEL, labelValue } from "../../drivers/k8s/names.ts";
import { enginePrivileged } from "../docker/engine_fixture.ts";
import { startFakeKube } from "../fakes/kube/server.ts";
import { ignoreKube } from "../k8s/fixture.ts";
import { definePipelineConformance } from "./pipeline_suite.ts";
import { definePipelineServiceConformance } from "./pipeline_services_suite.ts";
import { runIdOf } from "../helpers/pipeline_harness.ts";
import { NETWORK_SERVICE_HELPERS } from "./docker_service_helpers.ts";

const kube = ignoreKube ? undefined : await startFakeKube();
// The kubeconfig reaches the CLI through KUBECONFIG, as a user would set it (and keeps the
// temporary path out of the test names).
if (kube) Deno.env.set("KUBECONFIG", kube.kubeconfig);
const privileged = ignoreKube ? false : await enginePrivileged();
let closed = false;
globalThis.addEventListener("unload", () => {
  if (!closed) kube?.removeSync();
});

definePipelineConformance({
  driver: "k8s:namespace=default,start_timeout=1m",
  image: "busybox:latest",
  // Pods run on the local engine: one that cannot run privileged containers refuses them.
  capabilities: { ...K8S_CAPABILITIES, privileged },
  ignore: ignoreKube,
  absoluteMounts: true,
  numericUser: true,
});

// Services are pods; tasks reach them by name (hostAliases), as on docker's run network.
definePipelineServiceConformance({
  driver: "k8s:namespace=default,start_timeout=1m",
  ignore: ignoreKube,
  port: () => Promise.resolve(8080),
  helpers: NETWORK_SERVICE_HELPERS,
  remains: (result) => {
    const runId = runIdOf(result);
    return Promise.resolve(
      kube!.store.list("pods", "default")
        .filter((pod) => pod.metadata.labels?.[LABEL.run] === labelValue(runId))
        .map((pod) => pod.metadata.name as string),
    );
  },
});

Deno.test({
  name: "pipeline conformance [k8s]: the fake cluster shuts down",
  ignore: ignoreKube,
  async fn() {
    await kube!.close();
    closed = true;
  },
});
