/**
 * Resolves an exec's `user` (a name, `uid` or `uid:gid`) to numeric ids from the guest's
 * /etc/passwd.
 *
 * @module
 */

/** Numeric user and group. */
export interface UserIds {
  /** User id. */
  readonly uid: number;
  /** Group id. */
  readonly gid: number;
}

/**
 * The ids of `user` given the text of /etc/passwd. Throws a one-line error for an
 * unknown name.
 */
export function resolveUser(user: string, passwd: string): UserIds {
  const numeric = /^(\d+)(?::(\d+))?$/.exec(user);
  const entries = passwd.split("\n").map((line) => line.split(":")).filter((f) => f.length >= 4);
  if (numeric) {
    const uid = Number(numeric[1]);
    const gid = numeric[2] !== undefined
      ? Number(numeric[2])
      : Number(entries.find((f) => f[2] === numeric[1])?.[3] ?? uid);
    return { uid, gid };
  }
  const [name, group] = user.split(":");
  const entry = entries.find((f) => f[0] === name);
  if (entry === undefined) {
    throw new Error(`user "${name}" does not exist in the guest's /etc/passwd; give a uid instead`);
  }
  const gid = group === undefined ? Number(entry[3]) : Number(group);
  if (!Number.isInteger(gid)) throw new Error(`group "${group}" must be a numeric gid`);
  return { uid: Number(entry[2]), gid };
}
