/**
 * The fake API server's object store: namespaced objects per resource, one cluster-wide
 * `resourceVersion` counter, label and field selectors as the API server parses them, and
 * watches (`ADDED`/`MODIFIED`/`DELETED` from a given resourceVersion, `410 Gone` when it is
 * older than the kept history).
 *
 * @module
 */

/** A Kubernetes object as JSON. */
// deno-lint-ignore no-explicit-any
export type KubeObject = Record<string, any>;

/** One watch event. */
export interface WatchEvent {
  /** The event type. */
  readonly type: "ADDED" | "MODIFIED" | "DELETED";
  /** A copy of the object at that moment. */
  readonly object: KubeObject;
}

/** An API error answered with a `Status` body. */
export class StatusError extends Error {
  /** HTTP status code. */
  readonly code: number;
  /** The `reason` field (`NotFound`, `AlreadyExists`, ...). */
  readonly reason: string;
  /** The `details` field. */
  readonly details?: KubeObject;
  /** Creates the error. */
  constructor(code: number, reason: string, message: string, details?: KubeObject) {
    super(message);
    this.code = code;
    this.reason = reason;
    this.details = details;
  }
  /** The `Status` object the API server sends. */
  toStatus(): KubeObject {
    return {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

/** `404 NotFound` for `resource` `name`. */
export function notFound(resource: string, name: string): StatusError {
  return new StatusError(404, "NotFound", `${resource} "${name}" not found`, {
    name,
    kind: resource,
  });
}

type Requirement = (labels: Record<string, string>) => boolean;

/** Parses a label selector (`a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`). */
export function parseLabelSelector(selector: string | null): Requirement {
  if (!selector) return () => true;
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of selector) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(current.trim());
      current = "";
    } else current += ch;
  }
  if (current.trim()) parts.push(current.trim());
  const reqs: Requirement[] = parts.map((part) => {
    let m = /^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part);
    if (m) {
      const [, key, op, list] = m;
      const values = list.split(",").map((v) => v.trim());
      return op === "in"
        ? (l) => key in l && values.includes(l[key])
        : (l) => !(key in l) || !values.includes(l[key]);
    }
    m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part);
    if (m) {
      const [, key, op, value] = m;
      return op === "!=" ? (l) => l[key] !== value : (l) => l[key] === value;
    }
    if (/^![^=!\s]+$/.test(part)) return (l) => !(part.slice(1) in l);
    if (/^[^=!\s()]+$/.test(part)) return (l) => part in l;
    throw new StatusError(
      400,
      "BadRequest",
      `unable to parse requirement: found '${part}', expected: in, notin, =, ==, !=`,
    );
  });
  return (labels) => reqs.every((r) => r(labels ?? {}));
}

/** Parses a field selector (`path=value`, `path==value`, `path!=value`, comma-separated). */
export function parseFieldSelector(selector: string | null): (o: KubeObject) => boolean {
  if (!selector) return () => true;
  const reqs = selector.split(",").map((part) => {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(part.trim());
    if (!m) throw new StatusError(400, "BadRequest", `invalid field selector: '${part}'`);
    const [, path, op, value] = m;
    return (o: KubeObject) => {
      // deno-lint-ignore no-explicit-any
      let v: any = o;
      for (const key of path.split(".")) v = v?.[key];
      const s = v === undefined || v === null ? "" : String(v);
      return op === "!=" ? s !== value : s === value;
    };
  });
  return (o) => reqs.every((r) => r(o));
}

interface Watcher {
  readonly resource: string;
  readonly namespace?: string;
  readonly match: (o: KubeObject) => boolean;
  readonly send: (event: WatchEvent) => void;
}

const HISTORY = 5000;

/** Objects of every resource, keyed by resource, namespace and name. */
export class Store {
  #objects = new Map<string, KubeObject>();
  #rv = 1;
  #history: { rv: number; resource: string; event: WatchEvent }[] = [];
  #watchers = new Set<Watcher>();

  /** The current resourceVersion (as a string, as the API sends it). */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  #key(resource: string, namespace: string | undefined, name: string): string {
    return `${resource}/${namespace ?? ""}/${name}`;
  }

  /** A copy of one object, or `undefined`. */
  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const o = this.#objects.get(this.#key(resource, namespace, name));
    return o && structuredClone(o);
  }

  /** The object or a `404`. */
  must(resource: string, namespace: string | undefined, name: string): KubeObject {
    const o = this.get(resource, namespace, name);
    if (!o) throw notFound(resource, name);
    return o;
  }

  /** Copies of the objects matching the namespace (all when undefined) and selectors. */
  list(
    resource: string,
    namespace: string | undefined,
    match: (o: KubeObject) => boolean = () => true,
  ): KubeObject[] {
    const out: KubeObject[] = [];
    for (const [key, o] of this.#objects) {
      if (!key.startsWith(`${resource}/`)) continue;
      if (namespace !== undefined && o.metadata.namespace !== namespace) continue;
      if (match(o)) out.push(structuredClone(o));
    }
    return out.sort((a, b) => a.metadata.name < b.metadata.name ? -1 : 1);
  }

  #emit(resource: string, type: WatchEvent["type"], object: KubeObject): void {
    const event = { type, object: structuredClone(object) };
    this.#history.push({ rv: this.#rv, resource, event });
    if (this.#history.length > HISTORY) this.#history.shift();
    for (const w of this.#watchers) {
      if (w.resource !== resource) continue;
      if (w.namespace !== undefined && object.metadata.namespace !== w.namespace) continue;
      if (w.match(object)) w.send(event);
    }
  }

  /** Adds a new object (409 when it exists); sets uid, resourceVersion and creationTimestamp. */
  create(resource: string, object: KubeObject): KubeObject {
    const meta = object.metadata;
    const key = this.#key(resource, meta.namespace, meta.name);
    if (this.#objects.has(key)) {
      throw new StatusError(409, "AlreadyExists", `${resource} "${meta.name}" already exists`, {
        name: meta.name,
        kind: resource,
      });
    }
    meta.uid = crypto.randomUUID();
    meta.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    meta.resourceVersion = String(++this.#rv);
    this.#objects.set(key, structuredClone(object));
    this.#emit(resource, "ADDED", object);
    return structuredClone(object);
  }

  /** Changes an object in place with `change`; returns the new copy (404 when gone). */
  update(
    resource: string,
    namespace: string | undefined,
    name: string,
    change: (o: KubeObject) => void,
  ): KubeObject {
    const key = this.#key(resource, namespace, name);
    const o = this.#objects.get(key);
    if (!o) throw notFound(resource, name);
    change(o);
    o.metadata.resourceVersion = String(++this.#rv);
    this.#emit(resource, "MODIFIED", o);
    return structuredClone(o);
  }

  /** Removes an object; returns its last copy (404 when gone). */
  remove(resource: string, namespace: string | undefined, name: string): KubeObject {
    const key = this.#key(resource, namespace, name);
    const o = this.#objects.get(key);
    if (!o) throw notFound(resource, name);
    this.#objects.delete(key);
    o.metadata.resourceVersion = String(++this.#rv);
    this.#emit(resource, "DELETED", o);
    return structuredClone(o);
  }

  /**
   * Starts a watch: replays history newer than `fromRv` (410 when it is older than what is
   * kept), then sends live events until the returned function is called.
   */
  watch(
    resource: string,
    namespace: string | undefined,
    match: (o: KubeObject) => boolean,
    fromRv: string | null,
    send: (event: WatchEvent) => void,
  ): () => void {
    if (fromRv && fromRv !== "0") {
      const rv = Number(fromRv);
      const oldest = this.#history[0]?.rv ?? this.#rv;
      if (rv < oldest - 1 && this.#history.length >= HISTORY) {
        throw new StatusError(410, "Expired", `too old resource version: ${rv} (${oldest})`);
      }
      for (const h of this.#history) {
        if (h.rv <= rv || h.resource !== resource) continue;
        const o = h.event.object;
        if (namespace !== undefined && o.metadata.namespace !== namespace) continue;
        if (match(o)) send(h.event);
      }
    } else {
      for (const o of this.list(resource, namespace, match)) send({ type: "ADDED", object: o });
    }
    const watcher = { resource, namespace, match, send };
    this.#watchers.add(watcher);
    return () => this.#watchers.delete(watcher);
  }
}
