/**
 * Fly volumes for the driver: one Fly volume per logical volume and per cache (name + key), their
 * names (Fly allows `[a-z0-9_]{1,30}`: a hash of the namespace, run and name), the lock that
 * serialises machines sharing a volume (a Fly volume attaches to one machine at a time), and
 * archives in and out through a short-lived busybox helper machine driven with `exec`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { DriverError } from "../contract.ts";
import type { FlyApi } from "./api.ts";

/** The image of the archive helper machine. */
export const HELPER_IMAGE = "busybox:latest";

function h(text: string, n: number): string {
  return createHash("sha256").update(text).digest("hex").slice(0, n);
}

/** The prefix of every run volume of a namespace. */
export function runVolumePrefix(namespace: string): string {
  return `v_${h(namespace, 6)}_`;
}

/** The prefix of every cache of a namespace (with `name`: of that name's keys). */
export function cachePrefix(namespace: string, name?: string): string {
  return `c_${h(namespace, 6)}_${name === undefined ? "" : `${h(name, 6)}_`}`;
}

/** The Fly name of a run volume. */
export function runVolumeName(namespace: string, runId: string, name: string): string {
  return `${runVolumePrefix(namespace)}${h(`${runId}\0${name}`, 12)}`;
}

/** The Fly name of a cache (`key` undefined: the unkeyed cache). */
export function cacheVolumeName(namespace: string, name: string, key: string | undefined): string {
  return `${cachePrefix(namespace, name)}${key === undefined ? "u" : `k${h(key, 8)}`}`;
}

/** A FIFO lock per volume: one machine at a time. */
export class VolumeLocks {
  readonly #tails = new Map<string, Promise<void>>();

  /**
   * Waits until every one of `ids` is free and takes them (in a fixed order, so two machines
   * sharing two volumes cannot deadlock); the returned function gives them back.
   */
  async acquire(ids: readonly string[]): Promise<() => void> {
    const releases: (() => void)[] = [];
    for (const id of [...new Set(ids)].sort()) {
      const previous = this.#tails.get(id) ?? Promise.resolve();
      let release: () => void = () => {};
      const mine = new Promise<void>((resolve) => release = resolve);
      const tail = previous.then(() => mine);
      this.#tails.set(id, tail);
      await previous;
      releases.push(() => {
        release();
        if (this.#tails.get(id) === tail) this.#tails.delete(id);
      });
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const release of releases) release();
    };
  }

  /** Whether a machine holds the volume now. */
  busy(id: string): boolean {
    return this.#tails.has(id);
  }
}

/** A helper machine with one volume mounted at `/v`, for archive transfers. */
export class VolumeHelper {
  readonly #api: FlyApi;
  readonly #app: string;
  readonly #id: string;

  private constructor(api: FlyApi, app: string, id: string) {
    this.#api = api;
    this.#app = app;
    this.#id = id;
  }

  /**
   * Starts a helper (the caller holds the volume's lock and recorded `name`); without a volume
   * it is a plain machine on the app's private network (the services' probe helper).
   */
  static async start(
    api: FlyApi,
    app: string,
    name: string,
    volumeId: string | undefined,
    region: string | undefined,
    metadata: Record<string, string>,
  ): Promise<VolumeHelper> {
    const machine = await api.createMachine(app, {
      name,
      ...(region === undefined ? {} : { region }),
      config: {
        image: HELPER_IMAGE,
        init: { exec: ["sleep", "2147483647"] },
        guest: { cpu_kind: "shared", cpus: 1, memory_mb: 256 },
        restart: { policy: "no" },
        auto_destroy: true,
        mounts: volumeId === undefined ? [] : [{ volume: volumeId, path: "/v" }],
        metadata,
      },
    });
    const helper = new VolumeHelper(api, app, machine.id);
    try {
      while (!await api.waitState(app, machine.id, "started", 60)) { /* not yet */ }
    } catch (error) {
      await helper.destroy();
      throw error;
    }
    return helper;
  }

  /** Runs a command; a non-zero exit is an error with its stderr. */
  async run(
    command: readonly string[],
    what: string,
    idempotent = true,
    timeoutSeconds?: number,
  ): Promise<string> {
    const result = await this.#api.exec(this.#app, this.#id, command, idempotent, timeoutSeconds);
    if (result.exit_code !== 0) {
      const detail = (result.stderr ?? "").trim().split("\n")[0];
      throw new DriverError(
        result.exit_code === 3 ? "not_found" : "failed",
        `${what}: ${detail || `exit code ${result.exit_code}`}`,
      );
    }
    return result.stdout ?? "";
  }

  /** Writes `bytes` to `path` in the helper, in chunks small enough for one argv element. */
  async upload(path: string, bytes: Uint8Array, what: string): Promise<void> {
    await this.run(["sh", "-c", ': > "$1"', "sh", path], what);
    const chunk = 48 * 1024;
    for (let i = 0; i < bytes.length; i += chunk) {
      const part = bytes.subarray(i, i + chunk);
      await this.run(
        ["sh", "-c", 'printf %s "$1" | base64 -d >> "$2"', "sh", encode64(part), path],
        what,
        false,
      );
    }
  }

  /** Reads a file of the helper in base64 chunks. */
  async download(path: string, what: string): Promise<Uint8Array> {
    const size = Number((await this.run(["sh", "-c", 'wc -c < "$1"', "sh", path], what)).trim());
    const parts: Uint8Array[] = [];
    const chunk = 1024 * 1024;
    for (let offset = 0; offset < size; offset += chunk) {
      const text = await this.run([
        "sh",
        "-c",
        'tail -c +"$2" "$1" | head -c "$3" | base64',
        "sh",
        path,
        String(offset + 1),
        String(chunk),
      ], what);
      parts.push(decode64(text));
    }
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  /** Destroys the helper. */
  async destroy(): Promise<void> {
    await this.#api.destroy(this.#app, this.#id);
  }
}

/** Base64 of bytes. */
export function encode64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

/** Bytes of base64 (whitespace ignored). */
export function decode64(text: string): Uint8Array {
  return Uint8Array.from(atob(text.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
}
