/**
 * Pods of the fake cluster run as containers on the local dockerd: scheduling (CPU and memory
 * requests against the host, claims that must exist), the image (present locally = pulled;
 * missing = `ErrImagePull` then `ImagePullBackOff`; a bad reference = `InvalidImageName`),
 * `runAsNonRoot` checks (`CreateContainerConfigError`), the container's state as the kubelet
 * reports it (waiting / running / terminated with exitCode, reason `Completed`/`Error`/
 * `OOMKilled`), restarts with `CrashLoopBackOff`, `activeDeadlineSeconds`, graceful deletion,
 * and the Events a kubelet and scheduler write along the way. Only single-container pods.
 *
 * @module
 */

import { DockerApi, DockerApiError } from "./docker_api.ts";
import { parseQuantity } from "./quantity.ts";
import { type KubeObject, StatusError, type Store } from "./store.ts";

const NODE = "fake-node";
const DNS1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const IMAGE_REF =
  /^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?\/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What the runtime knows about one running pod. */
interface PodState {
  containerId?: string;
  deleting: boolean;
  graceEnds?: number;
  timers: ReturnType<typeof setTimeout>[];
  exited?: Promise<void>;
}

/** Runs the pods of one fake cluster. */
export class PodRuntime {
  readonly #docker: DockerApi;
  readonly #store: Store;
  readonly #cluster: string;
  readonly #network: string;
  readonly #pods = new Map<string, PodState>();
  #eventSeq = 0;

  /** `cluster` names the docker network and labels every container and volume. */
  constructor(docker: DockerApi, store: Store, cluster: string) {
    this.#docker = docker;
    this.#store = store;
    this.#cluster = cluster;
    this.#network = `fkube-${cluster}`;
  }

  /** The docker network the pods share. */
  get network(): string {
    return this.#network;
  }

  /** Creates the cluster's docker network. */
  async start(): Promise<void> {
    await this.#docker.json("POST", "/networks/create", {
      Name: this.#network,
      Labels: { "fake-kube.cluster": this.#cluster },
    });
  }

  /** The docker volume backing claim `claim` (its uid keeps a re-created claim empty). */
  claimVolume(ns: string, claim: string, uid: string): string {
    return `fkube-${this.#cluster}-${ns}-${claim}-${uid.slice(0, 8)}`;
  }

  /** Whether a pod that has not ended mounts the claim (the pvc-protection finalizer's rule). */
  claimInUse(ns: string, claim: string): boolean {
    return this.#store.list("pods", ns).some((p) =>
      p.status?.phase !== "Succeeded" && p.status?.phase !== "Failed" &&
      (p.spec.volumes ?? []).some((v: KubeObject) => v.persistentVolumeClaim?.claimName === claim)
    );
  }

  /** Docker volumes of deleted claims, removed once no container holds them. */
  readonly orphanVolumes = new Set<string>();

  /** Tries to remove the volumes of deleted claims. */
  async sweepOrphans(): Promise<void> {
    for (const name of [...this.orphanVolumes]) {
      try {
        await this.#docker.request("DELETE", `/volumes/${name}`);
        this.orphanVolumes.delete(name);
      } catch (error) {
        if ((error as { status?: number }).status === 404) this.orphanVolumes.delete(name);
      }
    }
  }

  /** Records an Event about `object` (as a kubelet or the scheduler does). */
  event(
    object: KubeObject,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
    component = "kubelet",
  ): void {
    const ts = now();
    const name = `${object.metadata.name}.${(Date.now() * 1000 + ++this.#eventSeq).toString(16)}`;
    this.#store.create("events", {
      kind: "Event",
      apiVersion: "v1",
      metadata: { name, namespace: object.metadata.namespace },
      involvedObject: {
        kind: object.kind ?? "Pod",
        namespace: object.metadata.namespace,
        name: object.metadata.name,
        uid: object.metadata.uid,
        apiVersion: "v1",
        resourceVersion: object.metadata.resourceVersion,
        ...(component === "kubelet" ? { fieldPath: "spec.containers{main}" } : {}),
      },
      reason,
      message,
      source: component === "kubelet" ? { component, host: NODE } : { component },
      firstTimestamp: ts,
      lastTimestamp: ts,
      count: 1,
      type,
      eventTime: null,
      reportingComponent: component,
      reportingInstance: component === "kubelet" ? NODE : "",
    });
  }

  /** Validates and fills a new pod's defaults as the API server does (422 on bad input). */
  admit(pod: KubeObject, ns: string): KubeObject {
    const meta = pod.metadata ?? {};
    if (!meta.name && meta.generateName) {
      meta.name = `${meta.generateName}${crypto.randomUUID().replace(/-/g, "").slice(0, 5)}`;
    }
    const invalid = (field: string, value: unknown, detail: string) =>
      new StatusError(
        422,
        "Invalid",
        `Pod "${meta.name ?? ""}" is invalid: ${field}: Invalid value: ${
          JSON.stringify(value)
        }: ${detail}`,
        { name: meta.name, kind: "Pod", causes: [{ reason: "FieldValueInvalid", field }] },
      );
    if (
      !meta.name || meta.name.length > 253 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(meta.name)
    ) {
      throw invalid(
        "metadata.name",
        meta.name ?? "",
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
      );
    }
    const containers = pod.spec?.containers;
    if (!Array.isArray(containers) || containers.length !== 1) {
      throw invalid(
        "spec.containers",
        containers?.length ?? 0,
        "the fake API server runs pods with exactly one container",
      );
    }
    const c = containers[0];
    if (!c.name || !DNS1123.test(c.name)) {
      throw invalid("spec.containers[0].name", c.name ?? "", "a lowercase RFC 1123 label");
    }
    if (!c.image) throw invalid("spec.containers[0].image", "", "Required value");
    meta.namespace = ns;
    meta.labels ??= {};
    pod.metadata = meta;
    pod.kind = "Pod";
    pod.apiVersion = "v1";
    const spec = pod.spec;
    spec.restartPolicy ??= "Always";
    spec.terminationGracePeriodSeconds ??= 30;
    spec.dnsPolicy ??= "ClusterFirst";
    spec.schedulerName ??= "default-scheduler";
    spec.securityContext ??= {};
    spec.serviceAccountName ??= "default";
    c.resources ??= {};
    if (c.resources.limits && !c.resources.requests) c.resources.requests = c.resources.limits;
    c.terminationMessagePath ??= "/dev/termination-log";
    c.terminationMessagePolicy ??= "File";
    const tagged = /:[\w][\w.-]*$/.test(c.image.split("/").pop() ?? "") ||
      c.image.includes("@");
    c.imagePullPolicy ??= tagged && !c.image.endsWith(":latest") ? "IfNotPresent" : "Always";
    const limits = c.resources.limits ?? {};
    const requests = c.resources.requests ?? {};
    const qos = limits.cpu && limits.memory && requests.cpu === limits.cpu &&
        requests.memory === limits.memory
      ? "Guaranteed"
      : Object.keys(limits).length || Object.keys(requests).length
      ? "Burstable"
      : "BestEffort";
    pod.status = { phase: "Pending", qosClass: qos };
    return pod;
  }

  /** Starts the lifecycle of a pod just stored. */
  run(pod: KubeObject): void {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    const rt: PodState = { deleting: false, timers: [] };
    this.#pods.set(key, rt);
    rt.exited = this.#lifecycle(pod, rt).catch(() => {});
  }

  #update(pod: KubeObject, change: (o: KubeObject) => void): KubeObject | undefined {
    try {
      return this.#store.update("pods", pod.metadata.namespace, pod.metadata.name, change);
    } catch {
      return undefined;
    }
  }

  #setCondition(o: KubeObject, type: string, status: string, reason?: string, message?: string) {
    o.status.conditions ??= [];
    const existing = o.status.conditions.find((c: KubeObject) => c.type === type);
    const cond = {
      type,
      status,
      lastProbeTime: null,
      lastTransitionTime: now(),
      ...(reason ? { reason } : {}),
      ...(message ? { message } : {}),
    };
    if (existing) {
      if (existing.status !== status) {
        for (const k of Object.keys(existing)) delete existing[k];
        Object.assign(existing, cond);
      } else {Object.assign(existing, {
          ...(reason ? { reason } : {}),
          ...(message ? { message } : {}),
        });}
    } else o.status.conditions.push(cond);
  }

  #containerStatus(pod: KubeObject, state: KubeObject, extra: KubeObject = {}): KubeObject {
    const c = pod.spec.containers[0];
    return {
      name: c.name,
      state,
      lastState: {},
      ready: state.running !== undefined,
      restartCount: 0,
      image: c.image,
      imageID: "",
      started: state.running !== undefined,
      ...extra,
    };
  }

  #waiting(pod: KubeObject, reason: string, message?: string): KubeObject | undefined {
    return this.#update(pod, (o) => {
      const prev = o.status.containerStatuses?.[0] ?? {};
      o.status.containerStatuses = [
        this.#containerStatus(o, { waiting: { reason, ...(message ? { message } : {}) } }, {
          restartCount: prev.restartCount ?? 0,
          lastState: prev.lastState ?? {},
        }),
      ];
      this.#setCondition(
        o,
        "ContainersReady",
        "False",
        "ContainersNotReady",
        `containers with unready status: [${o.spec.containers[0].name}]`,
      );
      this.#setCondition(
        o,
        "Ready",
        "False",
        "ContainersNotReady",
        `containers with unready status: [${o.spec.containers[0].name}]`,
      );
    });
  }

  /** While true, new pods stay Pending with no condition (as when the scheduler is down). */
  schedulerPaused = false;

  async #schedule(pod: KubeObject): Promise<string | undefined> {
    const c = pod.spec.containers[0];
    const req = c.resources?.requests ?? {};
    const problems: string[] = [];
    const cpu = parseQuantity(req.cpu);
    if (cpu !== undefined && cpu > navigator.hardwareConcurrency) {
      problems.push("1 Insufficient cpu");
    }
    const mem = parseQuantity(req.memory);
    if (mem !== undefined && mem > Deno.systemMemoryInfo().total) {
      problems.push("1 Insufficient memory");
    }
    for (const v of pod.spec.volumes ?? []) {
      const claim = v.persistentVolumeClaim?.claimName;
      if (!claim) continue;
      const pvc = this.#store.get("persistentvolumeclaims", pod.metadata.namespace, claim);
      if (!pvc) {
        return `0/1 nodes are available: persistentvolumeclaim "${claim}" not found. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.`;
      }
      if (pvc.status?.phase !== "Bound") {
        return "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
      }
    }
    await Promise.resolve();
    if (problems.length) {
      return `0/1 nodes are available: ${
        problems.join(", ")
      }. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.`;
    }
    return undefined;
  }

  async #imagePresent(image: string): Promise<KubeObject | undefined> {
    try {
      return await this.#docker.json<KubeObject>(
        "GET",
        `/images/${encodeURIComponent(image)}/json`,
      );
    } catch (error) {
      if (error instanceof DockerApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  async #lifecycle(pod: KubeObject, rt: PodState): Promise<void> {
    const c = pod.spec.containers[0];
    // Scheduling.
    for (;;) {
      if (rt.deleting) return;
      if (this.schedulerPaused) {
        await sleep(200);
        continue;
      }
      const unschedulable = await this.#schedule(pod);
      if (!unschedulable) break;
      const fresh = this.#update(pod, (o) => {
        const had = o.status.conditions?.some((x: KubeObject) => x.reason === "Unschedulable");
        this.#setCondition(o, "PodScheduled", "False", "Unschedulable", unschedulable);
        if (!had) this.event(o, "Warning", "FailedScheduling", unschedulable, "default-scheduler");
      });
      if (!fresh) return;
      await sleep(500);
    }
    let current = this.#update(pod, (o) => {
      o.spec.nodeName = NODE;
      o.status.hostIP = "127.0.0.1";
      o.status.hostIPs = [{ ip: "127.0.0.1" }];
      o.status.startTime = now();
      this.#setCondition(o, "PodScheduled", "True");
      this.#setCondition(o, "Initialized", "True");
      o.status.containerStatuses = [
        this.#containerStatus(o, { waiting: { reason: "ContainerCreating" } }),
      ];
      this.#setCondition(
        o,
        "ContainersReady",
        "False",
        "ContainersNotReady",
        `containers with unready status: [${c.name}]`,
      );
      this.#setCondition(
        o,
        "Ready",
        "False",
        "ContainersNotReady",
        `containers with unready status: [${c.name}]`,
      );
    });
    if (!current) return;
    this.event(
      current,
      "Normal",
      "Scheduled",
      `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${NODE}`,
      "default-scheduler",
    );
    const deadline = pod.spec.activeDeadlineSeconds;
    if (typeof deadline === "number") {
      rt.timers.push(setTimeout(() => this.#deadline(pod, rt), deadline * 1000));
    }
    // Image.
    if (!IMAGE_REF.test(c.image)) {
      const msg =
        `Failed to apply default image tag "${c.image}": couldn't parse image name "${c.image}": invalid reference format`;
      this.#waiting(pod, "InvalidImageName", msg);
      this.event(current, "Warning", "InspectFailed", msg);
      this.event(current, "Warning", "Failed", "Error: InvalidImageName");
      return;
    }
    let image: KubeObject | undefined;
    let backoff = false;
    for (;;) {
      if (rt.deleting) return;
      if (c.imagePullPolicy !== "Never") {
        if (!backoff) this.event(current, "Normal", "Pulling", `Pulling image "${c.image}"`);
      }
      image = await this.#imagePresent(c.image);
      if (image) break;
      if (c.imagePullPolicy === "Never") {
        const msg = `Container image "${c.image}" is not present with pull policy of Never`;
        this.#waiting(pod, "ErrImageNeverPull", msg);
        this.event(current, "Warning", "ErrImageNeverPull", msg);
        await sleep(2000);
        continue;
      }
      const ref = c.image.includes("/") ? c.image : `docker.io/library/${c.image}`;
      const full = /:[\w.-]+$/.test(ref.split("/").pop()!) ? ref : `${ref}:latest`;
      const pullMsg =
        `failed to pull and unpack image "${full}": failed to resolve reference "${full}": ${full}: not found`;
      if (!backoff) {
        this.#waiting(pod, "ErrImagePull", pullMsg);
        this.event(
          current,
          "Warning",
          "Failed",
          `Failed to pull image "${c.image}": rpc error: code = NotFound desc = ${pullMsg}`,
        );
        this.event(current, "Warning", "Failed", "Error: ErrImagePull");
        await sleep(1000);
        if (rt.deleting) return;
        this.#waiting(pod, "ImagePullBackOff", `Back-off pulling image "${c.image}"`);
        this.event(current, "Normal", "BackOff", `Back-off pulling image "${c.image}"`);
        this.event(current, "Warning", "Failed", "Error: ImagePullBackOff");
        backoff = true;
      }
      await sleep(2000);
    }
    if (rt.deleting) return;
    this.event(
      current,
      "Normal",
      "Pulled",
      `Container image "${c.image}" already present on machine`,
    );
    // Security context checks done by the kubelet before creating the container.
    const sc = { ...pod.spec.securityContext, ...c.securityContext };
    const imageUser = String(image.Config?.User ?? "");
    if (sc.runAsNonRoot) {
      let msg: string | undefined;
      if (sc.runAsUser === 0) msg = "container's runAsUser breaks non-root policy";
      else if (sc.runAsUser === undefined) {
        const u = imageUser.split(":")[0];
        if (u === "" || u === "0" || u === "root") {
          msg = "container has runAsNonRoot and image will run as root";
        } else if (!/^\d+$/.test(u)) {
          msg =
            `container has runAsNonRoot and image has non-numeric user (${u}), cannot verify user is non-root`;
        }
      }
      if (msg) {
        const full =
          `${msg} (pod: "${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})", container: ${c.name})`;
        this.#waiting(pod, "CreateContainerConfigError", full);
        this.event(current, "Warning", "Failed", `Error: ${full}`);
        return;
      }
    }
    const id = await this.#createContainer(pod, sc);
    rt.containerId = id;
    let restarts = 0;
    for (;;) {
      if (rt.deleting) return;
      try {
        await this.#docker.request("POST", `/containers/${id}/start`);
      } catch (error) {
        // What containerd reports through the kubelet when the process cannot start.
        const message =
          `failed to create containerd task: failed to create shim task: OCI runtime create failed: ${
            (error as Error).message
          }`;
        const at = now();
        this.#update(pod, (o) => {
          o.status.phase = "Failed";
          o.status.containerStatuses = [
            this.#containerStatus(o, {
              terminated: {
                exitCode: 128,
                reason: "StartError",
                message,
                startedAt: "1970-01-01T00:00:00Z",
                finishedAt: at,
                containerID: `docker://${id}`,
              },
            }, { containerID: `docker://${id}`, restartCount: restarts, started: false }),
          ];
          this.#setCondition(o, "ContainersReady", "False", "PodFailed");
          this.#setCondition(o, "Ready", "False", "PodFailed");
        });
        this.event(current, "Warning", "Failed", `Error: ${message}`);
        return;
      }
      let inspect = await this.#docker.json<KubeObject>("GET", `/containers/${id}/json`);
      if (pod.spec.shareProcessNamespace === true) {
        // The init standing in for the pause process reports an exec failure itself
        // ("[FATAL tini ...] exec X failed"); runc reports it as a start error, as here.
        await sleep(10);
        inspect = await this.#docker.json<KubeObject>("GET", `/containers/${id}/json`);
        const failed = !inspect.State.Running && inspect.State.ExitCode >= 126 &&
          (await this.#initFailure(id));
        if (failed) {
          const message =
            `failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: ${failed}: unknown`;
          this.#update(pod, (o) => {
            o.status.phase = "Failed";
            o.status.containerStatuses = [
              this.#containerStatus(o, {
                terminated: {
                  exitCode: 128,
                  reason: "StartError",
                  message,
                  startedAt: "1970-01-01T00:00:00Z",
                  finishedAt: now(),
                  containerID: `docker://${id}`,
                },
              }, { containerID: `docker://${id}`, started: false }),
            ];
          });
          this.event(current, "Warning", "Failed", `Error: ${message}`);
          return;
        }
      }
      if (restarts === 0) {
        this.event(current, "Normal", "Created", `Created container ${c.name}`);
      }
      this.event(current, "Normal", "Started", `Started container ${c.name}`);
      const ip = inspect.NetworkSettings?.Networks?.[this.#network]?.IPAddress ?? "";
      current = this.#update(pod, (o) => {
        const prev = o.status.containerStatuses?.[0] ?? {};
        o.status.podIP = ip;
        o.status.podIPs = ip ? [{ ip }] : [];
        o.status.phase = "Running";
        o.status.containerStatuses = [
          this.#containerStatus(o, {
            running: { startedAt: inspect.State.StartedAt.replace(/\.\d+Z$/, "Z") },
          }, {
            containerID: `docker://${id}`,
            imageID: `docker-pullable://${image!.Id}`,
            restartCount: restarts,
            lastState: prev.lastState ?? {},
          }),
        ];
        this.#setCondition(o, "ContainersReady", "True");
        this.#setCondition(o, "Ready", "True");
      }) ?? current;
      await this.#docker.request("POST", `/containers/${id}/wait`).then((r) => r.text());
      const done = await this.#docker.json<KubeObject>("GET", `/containers/${id}/json`);
      const code: number = done.State.ExitCode;
      const terminated = {
        exitCode: code,
        reason: done.State.OOMKilled ? "OOMKilled" : code === 0 ? "Completed" : "Error",
        startedAt: done.State.StartedAt.replace(/\.\d+Z$/, "Z"),
        finishedAt: done.State.FinishedAt.replace(/\.\d+Z$/, "Z"),
        containerID: `docker://${id}`,
      };
      const policy = pod.spec.restartPolicy;
      const restart = !rt.deleting &&
        (policy === "Always" || (policy === "OnFailure" && code !== 0));
      if (!restart) {
        this.#update(pod, (o) => {
          if (o.status.reason === "DeadlineExceeded") {
            o.status.containerStatuses[0].state = { terminated };
            o.status.containerStatuses[0].ready = false;
            return;
          }
          o.status.phase = code === 0 ? "Succeeded" : "Failed";
          o.status.containerStatuses = [
            this.#containerStatus(o, { terminated }, {
              containerID: `docker://${id}`,
              imageID: `docker-pullable://${image!.Id}`,
              restartCount: restarts,
              started: false,
            }),
          ];
          this.#setCondition(o, "ContainersReady", "False", "PodCompleted");
          this.#setCondition(o, "Ready", "False", "PodCompleted");
        });
        return;
      }
      restarts++;
      const wait = Math.min(10_000, 500 * 2 ** (restarts - 1));
      this.#update(pod, (o) => {
        o.status.containerStatuses = [
          this.#containerStatus(o, {
            waiting: {
              reason: "CrashLoopBackOff",
              message: `back-off ${
                Math.round(wait / 1000)
              }s restarting failed container=${c.name} pod=${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})`,
            },
          }, { restartCount: restarts, lastState: { terminated }, containerID: `docker://${id}` }),
        ];
        this.#setCondition(o, "ContainersReady", "False", "ContainersNotReady");
        this.#setCondition(o, "Ready", "False", "ContainersNotReady");
      });
      this.event(current, "Warning", "BackOff", "Back-off restarting failed container");
      await sleep(wait);
    }
  }

  async #createContainer(pod: KubeObject, sc: KubeObject): Promise<string> {
    const c = pod.spec.containers[0];
    const ns = pod.metadata.namespace;
    const mounts: KubeObject[] = [];
    for (const m of c.volumeMounts ?? []) {
      const v = (pod.spec.volumes ?? []).find((x: KubeObject) => x.name === m.name);
      if (!v) continue;
      let source: string;
      if (v.persistentVolumeClaim) {
        const claim = this.#store.get(
          "persistentvolumeclaims",
          ns,
          v.persistentVolumeClaim.claimName,
        );
        if (!claim) continue;
        source = this.claimVolume(ns, claim.metadata.name, claim.metadata.uid);
      } else if (v.emptyDir) source = `fkube-${this.#cluster}-${pod.metadata.uid}-${v.name}`;
      else continue;
      mounts.push({
        Type: "volume",
        Source: source,
        Target: m.mountPath,
        ReadOnly: m.readOnly === true,
        ...(m.subPath ? { VolumeOptions: { Subpath: m.subPath } } : {}),
        ...(v.emptyDir
          ? { VolumeOptions: { Labels: { "fake-kube.cluster": this.#cluster } } }
          : {}),
      });
    }
    const user = sc.runAsUser === undefined
      ? undefined
      : sc.runAsGroup === undefined
      ? String(sc.runAsUser)
      : `${sc.runAsUser}:${sc.runAsGroup}`;
    const limits = c.resources?.limits ?? {};
    const memory = parseQuantity(limits.memory);
    const cpu = parseQuantity(limits.cpu);
    const services = this.#store.list("services", ns).filter((s) => {
      const sel = s.spec?.selector ?? {};
      return Object.keys(sel).length > 0 &&
        Object.entries(sel).every(([k, v]) => pod.metadata.labels?.[k] === v);
    }).flatMap((
      s,
    ) => [
      s.metadata.name,
      `${s.metadata.name}.${ns}`,
      `${s.metadata.name}.${ns}.svc`,
      `${s.metadata.name}.${ns}.svc.cluster.local`,
    ]);
    const body = {
      Image: c.image,
      ...(c.command ? { Entrypoint: c.command, Cmd: c.args ?? [] } : c.args ? { Cmd: c.args } : {}),
      Env: (c.env ?? []).filter((e: KubeObject) =>
        typeof e.value === "string" || e.value === undefined
      )
        .map((e: KubeObject) => `${e.name}=${e.value ?? ""}`),
      ...(c.workingDir ? { WorkingDir: c.workingDir } : {}),
      ...(user ? { User: user } : {}),
      Hostname: pod.metadata.name.slice(0, 63),
      OpenStdin: c.stdin === true,
      StdinOnce: c.stdinOnce === true,
      AttachStdin: c.stdin === true,
      Tty: c.tty === true,
      Labels: {
        "fake-kube.cluster": this.#cluster,
        "fake-kube.pod": `${ns}/${pod.metadata.name}`,
      },
      HostConfig: {
        Mounts: mounts,
        // shareProcessNamespace: the pod's pause process is PID 1 (an init stands in for it), so
        // the container's command is not, and gets ordinary signal handling.
        Init: pod.spec.shareProcessNamespace === true,
        Privileged: sc.privileged === true,
        ...(memory ? { Memory: Math.round(memory), MemorySwap: Math.round(memory) } : {}),
        ...(cpu ? { NanoCpus: Math.round(cpu * 1e9) } : {}),
        NetworkMode: this.#network,
        // hostAliases: the kubelet writes them into the pod's /etc/hosts.
        ExtraHosts: (pod.spec.hostAliases ?? []).flatMap((alias: KubeObject) =>
          (alias.hostnames ?? []).map((hostname: string) => `${hostname}:${alias.ip}`)
        ),
      },
      NetworkingConfig: {
        EndpointsConfig: { [this.#network]: { Aliases: [pod.metadata.name, ...services] } },
      },
    };
    const name = `k8s_${c.name}_${pod.metadata.name}_${ns}_${pod.metadata.uid.slice(0, 8)}`;
    const created = await this.#docker.json<{ Id: string }>(
      "POST",
      `/containers/create?name=${encodeURIComponent(name)}`,
      body,
    );
    return created.Id;
  }

  /** The exec error the init logged, when it could not start the command. */
  async #initFailure(id: string): Promise<string | undefined> {
    const res = await this.#docker.request("GET", `/containers/${id}/logs?stderr=1&tail=5`);
    const text = new TextDecoder().decode(new Uint8Array(await res.arrayBuffer()));
    const m = /\[FATAL tini \(\d+\)\] exec (\S+) failed: ([^\n]+)/.exec(text);
    if (!m) return undefined;
    return /No such file/.test(m[2])
      ? `exec: "${m[1]}": executable file not found in $PATH`
      : `exec: "${m[1]}": ${m[2].trim()}`;
  }

  async #deadline(pod: KubeObject, rt: PodState): Promise<void> {
    const o = this.#store.get("pods", pod.metadata.namespace, pod.metadata.name);
    if (!o || o.status.phase === "Succeeded" || o.status.phase === "Failed") return;
    this.#update(pod, (x) => {
      x.status.phase = "Failed";
      x.status.reason = "DeadlineExceeded";
      x.status.message = "Pod was active on the node longer than the specified deadline";
    });
    this.event(
      o,
      "Normal",
      "DeadlineExceeded",
      "Pod was active on the node longer than the specified deadline",
    );
    if (rt.containerId) {
      await this.#docker.request("POST", `/containers/${rt.containerId}/stop?t=0`).catch(() => {});
    }
  }

  /** The docker container of a pod, or `undefined` when it was not created yet. */
  containerOf(ns: string, name: string): string | undefined {
    return this.#pods.get(`${ns}/${name}`)?.containerId;
  }

  /** Deletes a pod gracefully: marks it, stops the container with the grace, removes both. */
  delete(ns: string, name: string, graceSeconds?: number): KubeObject {
    const pod = this.#store.must("pods", ns, name);
    const grace = graceSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
    const rt = this.#pods.get(`${ns}/${name}`);
    const marked = this.#store.update("pods", ns, name, (o) => {
      o.metadata.deletionTimestamp ??= new Date(Date.now() + grace * 1000).toISOString()
        .replace(/\.\d+Z$/, "Z");
      o.metadata.deletionGracePeriodSeconds = grace;
    });
    if (rt && !rt.deleting) {
      rt.deleting = true;
      rt.graceEnds = Date.now() + grace * 1000;
      void this.#finishDelete(ns, name, rt, grace);
    } else if (rt && rt.containerId && Date.now() + grace * 1000 < (rt.graceEnds ?? 0)) {
      // A second delete with a shorter grace period shortens it (to now, for 0).
      rt.graceEnds = Date.now() + grace * 1000;
      const id = rt.containerId;
      setTimeout(() => {
        void this.#docker.request("POST", `/containers/${id}/kill`).catch(() => {});
      }, grace * 1000);
    } else if (!rt) {
      this.#store.remove("pods", ns, name);
    }
    return marked;
  }

  async #finishDelete(ns: string, name: string, rt: PodState, grace: number): Promise<void> {
    for (const t of rt.timers) clearTimeout(t);
    if (rt.containerId) {
      // A zero grace period kills at once (as a forced deletion does); else SIGTERM, then
      // SIGKILL when the grace period ends.
      await this.#docker.request(
        "POST",
        grace === 0
          ? `/containers/${rt.containerId}/kill`
          : `/containers/${rt.containerId}/stop?t=${grace}`,
      ).catch(() => {});
      await rt.exited;
      await this.#docker.request("DELETE", `/containers/${rt.containerId}?force=true&v=true`)
        .catch(() => {});
    }
    const pod = this.#store.get("pods", ns, name);
    for (const v of pod?.spec.volumes ?? []) {
      if (v.emptyDir) {
        await this.#docker.request(
          "DELETE",
          `/volumes/fkube-${this.#cluster}-${pod!.metadata.uid}-${v.name}`,
        )
          .catch(() => {});
      }
    }
    this.#pods.delete(`${ns}/${name}`);
    try {
      this.#store.remove("pods", ns, name);
    } catch { /* already gone */ }
    await this.sweepOrphans();
  }

  /** Removes every container, volume and the network of the cluster. */
  async close(): Promise<void> {
    for (const rt of this.#pods.values()) {
      rt.deleting = true;
      for (const t of rt.timers) clearTimeout(t);
    }
    const filter = encodeURIComponent(
      JSON.stringify({ label: [`fake-kube.cluster=${this.#cluster}`] }),
    );
    const containers = await this.#docker.json<{ Id: string }[]>(
      "GET",
      `/containers/json?all=true&filters=${filter}`,
    );
    await Promise.all(
      containers.map((c) =>
        this.#docker.request("DELETE", `/containers/${c.Id}?force=true&v=true`).catch(() => {})
      ),
    );
    await Promise.all([...this.#pods.values()].map((rt) => rt.exited));
    const volumes = await this.#docker.json<{ Volumes: { Name: string }[] | null }>(
      "GET",
      `/volumes?filters=${filter}`,
    );
    await Promise.all(
      (volumes.Volumes ?? []).map((v) =>
        this.#docker.request("DELETE", `/volumes/${v.Name}?force=true`).catch(() => {})
      ),
    );
    await this.#docker.request("DELETE", `/networks/${this.#network}`).catch(() => {});
  }
}
