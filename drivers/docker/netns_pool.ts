/**
 * Network holders: small pause containers on the run's network whose network namespace tasks
 * join (`NetworkMode: container:<holder>`), as the containers of a Kubernetes pod join its pause
 * container. Putting a container on a user-defined network costs the engine a veth pair, iptables
 * rules and its embedded DNS set-up; joining an existing namespace costs none of that, so a task
 * starts in about half the time, and it still reaches the run's sandboxes by name.
 *
 * A holder serves one running task at a time (tasks running side by side never share ports or
 * localhost), and goes back to the pool when its task has exited. What outlives a task in the
 * namespace: TCP sockets in TIME_WAIT (holders keep none, see the sysctl below), and the holder's
 * `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`, which the engine shares with every
 * container that joins it. Their size, mode and modification time
 * are compared with the holder's first ones when it comes back; a holder whose files changed is
 * removed instead of reused. When no holder is free the pool makes one for the task that asked,
 * one at a time; meanwhile other tasks join the network directly, so the pool grows to the run's
 * parallelism only as fast as it is needed.
 *
 * @module
 */

// @ts-types="npm:@types/dockerode@^3"
import type Docker from "dockerode";
import type { TaskSpec } from "../contract.ts";
import { ensureHelperImage, HELPER_IMAGE } from "./helper_image.ts";
import { labelsFor, resourceName } from "./labels.ts";
import { isPauseArch, pausePath } from "./pause_binary.ts";
import type { ResourceTracker } from "./tracker.ts";

/** The files a joining container shares with the holder. */
const SHARED_FILES = ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"] as const;

/** A running holder and the state of its shared files when it was made. */
export interface NetnsHolder {
  /** Container ID. */
  readonly id: string;
  /** The engine's stat of the shared files, as first seen. */
  readonly files: string;
}

/** What the pool needs from the driver. */
export interface NetnsPoolOptions {
  /** The engine client. */
  readonly docker: Docker;
  /** Records holders in the run's state, so `gc` finds them after a crash. */
  readonly tracker: ResourceTracker;
  /** The run's network (created on first use). */
  readonly network: () => Promise<string>;
  /** Removes a container in the background (a retired holder). */
  readonly remove: (container: Docker.Container) => void;
  /** Tells the user something once (holders turned off for the run). */
  readonly warn: (message: string) => void;
}

/**
 * Whether a task may run in a shared holder: a privileged one could change the namespace itself
 * (interfaces, routes, firewall rules) for the tasks after it, so it joins the network itself.
 */
export function mayShareNetns(spec: TaskSpec): boolean {
  return spec.privileged !== true;
}

/** The engine's stat of the holder's shared files, one string to compare. */
async function sharedFilesStat(container: Docker.Container): Promise<string> {
  const stats = await Promise.all(SHARED_FILES.map(async (path) => {
    const response = await container.infoArchive({ path }) as unknown as {
      headers: Record<string, string | undefined>;
      resume?: () => void;
    };
    response.resume?.();
    return response.headers["x-docker-container-path-stat"] ?? "";
  }));
  return stats.join(" ");
}

/** The pool of one run's network holders. */
export class NetnsPool {
  readonly #options: NetnsPoolOptions;
  readonly #idle: NetnsHolder[] = [];
  readonly #waiters:
    ((holder: NetnsHolder | undefined | Promise<NetnsHolder | undefined>) => void)[] = [];
  #returning = 0;
  #creating = 0;
  #made = 0;
  #arch: Promise<string | undefined> | undefined;
  #disabled = false;
  #closed = false;

  /** A pool that makes its holders on the options' engine and network. */
  constructor(options: NetnsPoolOptions) {
    this.#options = options;
  }

  /**
   * A holder for one task: an idle one, one on its way back, or a new one when none is being made.
   * `undefined`: the task joins the network itself (the pool is busy making one, the engine's
   * architecture has no pause program, or making a holder failed).
   */
  async acquire(): Promise<NetnsHolder | undefined> {
    if (this.#closed || this.#disabled) return undefined;
    const idle = this.#idle.pop();
    if (idle) return idle;
    if (this.#returning > this.#waiters.length) {
      return await new Promise((resolve) => this.#waiters.push(resolve));
    }
    if (this.#creating > 0) return undefined;
    this.#creating++;
    try {
      return await this.#create();
    } catch (error) {
      // Holders only make tasks start faster: without them tasks join the network themselves.
      this.#disabled = true;
      this.#options.warn(
        `docker: network holders are off for this run (${
          String((error as Error)?.message ?? error).split("\n")[0]
        }); tasks join the run's network themselves, which starts each one more slowly`,
      );
      return undefined;
    } finally {
      this.#creating--;
    }
  }

  /** Gives a holder back once its task has exited; it is checked before anyone reuses it. */
  release(holder: NetnsHolder): void {
    this.#returning++;
    const container = this.#options.docker.getContainer(holder.id);
    sharedFilesStat(container).then((files) => files === holder.files, () => false).then(
      (reusable) => {
        this.#returning--;
        if (this.#closed) return; // the driver's close removes every container of the run
        if (!reusable) {
          this.#options.remove(container);
          // The task that waited for this holder asks again: an idle one, or a new one.
          this.#waiters.shift()?.(this.acquire());
          return;
        }
        const waiter = this.#waiters.shift();
        if (waiter) waiter(holder);
        else this.#idle.push(holder);
      },
    );
  }

  /** Gives a holder back that a task could not join (it stopped): it is removed. */
  discard(holder: NetnsHolder): void {
    this.#options.remove(this.#options.docker.getContainer(holder.id));
  }

  /** Stops handing out holders; the driver's close removes them with the run's containers. */
  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
  }

  #engineArch(): Promise<string | undefined> {
    this.#arch ??= this.#options.docker.version().then((v) => v.Arch, () => undefined);
    return this.#arch;
  }

  async #create(): Promise<NetnsHolder | undefined> {
    const { docker, tracker } = this.#options;
    const [arch, network] = await Promise.all([
      this.#engineArch(),
      this.#options.network(),
      ensureHelperImage(docker),
    ]);
    if (!arch || !isPauseArch(arch)) {
      this.#disabled = true;
      return undefined;
    }
    const { namespace, runId } = tracker;
    const name = resourceName("pocketci", namespace, runId, "netns", String(++this.#made));
    const container = await docker.createContainer({
      name,
      Image: HELPER_IMAGE,
      Cmd: [pausePath(arch)],
      Labels: labelsFor(namespace, runId, "netns"),
      // The pause program has no signal handler: a stop kills it at once.
      StopSignal: "SIGKILL",
      HostConfig: {
        NetworkMode: network,
        // A connection closed in one task leaves a TIME_WAIT socket in the namespace for a
        // minute, and the next task's server could not bind that port (EADDRINUSE without
        // SO_REUSEADDR). With no TIME_WAIT buckets such sockets end at once, as they did when
        // every task had a namespace of its own that ended with it.
        Sysctls: { "net.ipv4.tcp_max_tw_buckets": "0" },
      },
    });
    try {
      await tracker.record("container", container.id, { name, role: "netns" });
      await container.start();
      return { id: container.id, files: await sharedFilesStat(container) };
    } catch (error) {
      this.#options.remove(container);
      throw error;
    }
  }
}
