/**
 * The small `sh` program every task and sandbox call runs through inside the guest. QGA alone
 * returns output only at exit and cannot stop a process group, so the wrapper:
 * 1. redirects its output to `stdout`/`stderr` files in the call's I/O directory on the 9p
 *    share, which the host follows as they grow (live output, no size limit);
 * 2. creates the task's directory, bind-mounts volumes at their paths and enters the working
 *    directory (or reports which step failed in `error`);
 * 3. checks the command exists (`error` = `notfound`, exit 127);
 * 4. starts it with `setsid` (its own session and process group, with the original stdin)
 *    and writes its PID to `pid`, so the host can signal the whole group; the wrapper's own
 *    stderr then goes to /dev/null (the shell would report "Killed" for a signalled job);
 * 5. waits for it, kills what is left of its group, writes the status to `status` (one
 *    `write` of digits and a newline: the host takes the file only once the newline is there,
 *    so no rename, which would cost a process) and exits with it (128+N for a death by signal N).
 * Without an I/O directory (no 9p share in the guest) step 1 is skipped and the agent's
 * captured output is used instead.
 *
 * Arguments: io-dir ("" for none), base-dir, workdir, workdir-mode (create|exists),
 * mount-count, then source/target pairs, then the command.
 *
 * @module
 */

/** The wrapper script, run as `sh -c WRAPPER pocketci-wrapper ARGS...`. */
export const WRAPPER = `io=$1; base=$2; wd=$3; mode=$4; n=$5; shift 5
if [ -n "$io" ]; then exec >>"$io/stdout" 2>>"$io/stderr"; fi
fail() { echo "pocketci: $2" >&2; [ -z "$io" ] || { echo "$1: $2" > "$io/error.tmp" && mv "$io/error.tmp" "$io/error"; }; exit "$3"; }
cd "$base" 2>/dev/null || { mkdir -p "$base" && cd "$base"; } || fail setup "cannot create the directory $base" 125
while [ "$n" -gt 0 ]; do
  src=$1; dst=$2; shift 2; n=$((n - 1))
  mkdir -p "$dst" && mount -o bind "$src" "$dst" || fail mount "cannot mount $src at $dst" 125
done
if [ -n "$wd" ]; then
  if [ "$mode" = create ]; then mkdir -p "$wd" || fail workdir "cannot create the working directory $wd" 125; fi
  cd "$wd" || fail workdir "working directory $wd does not exist" 125
fi
[ "$#" -gt 0 ] || exit 0
case "$1" in
  */*) [ -f "$1" ] && [ -x "$1" ] || fail notfound "$1: command not found" 127 ;;
  *) command -v "$1" >/dev/null 2>&1 || fail notfound "$1: command not found" 127 ;;
esac
exec 3<&0
setsid "$@" <&3 3<&- &
pid=$!
exec 3<&- 2>/dev/null
[ -z "$io" ] || echo "$pid" > "$io/pid"
wait "$pid"
st=$?
kill -KILL -- "-$pid" 2>/dev/null
[ -z "$io" ] || echo "$st" > "$io/status"
exit "$st"`;

/** Where a call's files live and what it runs. */
export interface WrapperCall {
  /** The call's I/O directory in the guest ("" when the share is not available). */
  readonly ioDir: string;
  /** The task's default working directory in the guest. */
  readonly baseDir: string;
  /** The working directory, relative to `baseDir` or absolute ("" for `baseDir`). */
  readonly workDir: string;
  /** Whether a missing working directory is created (tasks) or an error (sandbox calls). */
  readonly createWorkDir: boolean;
  /** Bind mounts: guest source directory and target (relative to `baseDir` or absolute). */
  readonly mounts: readonly { readonly source: string; readonly target: string }[];
  /** The command (empty: only prepare the directory and mounts). */
  readonly command: readonly string[];
}

/** The arguments of `/bin/sh` for a call. */
export function wrapperArgs(call: WrapperCall): string[] {
  return [
    "-c",
    WRAPPER,
    "pocketci-wrapper",
    call.ioDir,
    call.baseDir,
    call.workDir,
    call.createWorkDir ? "create" : "exists",
    String(call.mounts.length),
    ...call.mounts.flatMap((mount) => [mount.source, mount.target]),
    ...call.command,
  ];
}

/** Exit status of the wrapper: a code above 128 (up to 128+64) is a death by that signal. */
export function statusOf(code: number, signal?: number): { code: number; signal?: number } {
  if (signal !== undefined && signal > 0) return { code: 128 + signal, signal };
  if (code > 128 && code <= 128 + 64) return { code, signal: code - 128 };
  return { code };
}
