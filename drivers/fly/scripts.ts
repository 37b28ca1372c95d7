/**
 * The shell scripts a Fly machine carries (delivered through `config.files` under `/.pocketci`),
 * which make a task's whole output readable through the Machines `exec` endpoint:
 *
 * - `start.sh DIR WORKDIR NENV K=V... -- ARGV...` starts ARGV in the background in WORKDIR with
 *   stdout and stderr going to `DIR/out` and `DIR/err` (stdin from `DIR/stdin` when present, else
 *   `/dev/null`), in a session of its own (`setsid`, when the image has it) whose process group
 *   (`-PID`, else the PID) is in `DIR/pid` for signals; when it ends, what is left of its group is
 *   killed and its exit status goes to `DIR/status`. A command that does not exist writes
 *   `DIR/notfound` instead of running.
 * - `run.sh task WORKDIR ARGV...` is a task machine's `init.exec`: `start.sh` on `/.pocketci/task`,
 *   SIGTERM/SIGINT forwarded to the command, then it waits until the driver has read everything
 *   (`DIR/release`, at most 10 minutes after the exit) and exits with the command's status, so the
 *   machine's exit event carries the task's exit code (and Fly's `oom_killed`).
 *   `run.sh sandbox WORKDIR` keeps a sandbox machine up until it is stopped. Both first append
 *   `/.pocketci/hosts` (the run's services: `ADDRESS NAME` lines) to `/etc/hosts`.
 * - `read.sh DIR OUT_OFFSET ERR_OFFSET MAX` prints `STATUS NOTFOUND OUT_SIZE ERR_SIZE`, then the
 *   next at most MAX bytes of each stream from the offsets, base64-encoded, separated by a `.`
 *   line. The status is read before the sizes, so once it is set the sizes are final.
 *
 * Only POSIX sh plus `base64`, `tail -c`, `head -c`, `wc` and `sleep` are needed (busybox and
 * coreutils both have them).
 *
 * @module
 */

/** Where the scripts and job directories live in a machine. */
export const FLY_DIR = "/.pocketci";

/** The task's job directory. */
export const TASK_JOB_DIR = `${FLY_DIR}/task`;

const START_SH = `d=$1; wd=$2; n=$3; shift 3
while [ "$n" -gt 0 ]; do export "$1"; shift; n=$((n-1)); done
[ "$1" = "--" ] && shift
mkdir -p "$d"
: >"$d/err"
if ! mkdir -p "$wd" 2>>"$d/err" || ! cd "$wd" 2>>"$d/err"; then
  : >"$d/out"; echo 1 >"$d/status"; exit 0
fi
case "$1" in
  */*) if [ ! -f "$1" ] || [ ! -x "$1" ]; then : >"$d/out"; : >"$d/notfound"; echo 127 >"$d/status"; exit 0; fi ;;
  *) if ! command -v "$1" >/dev/null 2>&1; then : >"$d/out"; : >"$d/notfound"; echo 127 >"$d/status"; exit 0; fi ;;
esac
in=/dev/null; [ -e "$d/stdin" ] && in="$d/stdin"
: >"$d/out"
s=; command -v setsid >/dev/null 2>&1 && s=setsid
(
  $s "$@" <"$in" >"$d/out" 2>>"$d/err" &
  p=$!; g=$p; [ -n "$s" ] && g=-$p
  echo "$g" >"$d/pid.tmp"; mv "$d/pid.tmp" "$d/pid"
  wait $p; c=$?
  [ -n "$s" ] && kill -KILL "$g" 2>/dev/null
  echo $c >"$d/status.tmp"; mv "$d/status.tmp" "$d/status"
) </dev/null >/dev/null 2>&1 &
while [ ! -e "$d/pid" ] && [ ! -e "$d/status" ]; do sleep 0.05; done
`;

const RUN_SH = `mode=$1; wd=$2; shift 2
d=${TASK_JOB_DIR}
if [ -f ${FLY_DIR}/hosts ]; then cat ${FLY_DIR}/hosts >>/etc/hosts 2>/dev/null; fi
if [ "$mode" = sandbox ]; then
  mkdir -p "$wd"
  trap 'exit 143' TERM INT
  while :; do sleep 1; done
fi
sh ${FLY_DIR}/start.sh "$d" "$wd" 0 -- "$@"
fwd() { [ -e "$d/pid" ] && kill -"$1" "$(cat "$d/pid")" 2>/dev/null; }
trap 'fwd TERM' TERM
trap 'fwd INT' INT
while [ ! -e "$d/status" ]; do sleep 0.1; done
i=0
while [ ! -e "$d/release" ] && [ "$i" -lt 6000 ]; do sleep 0.1; i=$((i+1)); done
exit "$(cat "$d/status")"
`;

const READ_SH = `d=$1
if [ ! -e "$d/out" ]; then echo "- 0 0 0"; echo .; exit 0; fi
st=-; [ -e "$d/status" ] && st=$(cat "$d/status")
nf=0; [ -e "$d/notfound" ] && nf=1
so=$(wc -c <"$d/out"); se=$(wc -c <"$d/err")
echo "$st $nf $so $se"
tail -c +$(($2+1)) "$d/out" | head -c "$4" | base64
echo .
tail -c +$(($3+1)) "$d/err" | head -c "$4" | base64
`;

/** The files every machine gets, as `config.files` entries. */
export function scriptFiles(): { guest_path: string; raw_value: string }[] {
  const b64 = (text: string) => btoa(text);
  return [
    { guest_path: `${FLY_DIR}/start.sh`, raw_value: b64(START_SH) },
    { guest_path: `${FLY_DIR}/run.sh`, raw_value: b64(RUN_SH) },
    { guest_path: `${FLY_DIR}/read.sh`, raw_value: b64(READ_SH) },
  ];
}

/** What one `read.sh` call returned. */
export interface ReadResult {
  /** The exit status once the command ended. */
  readonly status?: number;
  /** The command did not exist. */
  readonly notFound: boolean;
  /** Sizes of the files when read (final once `status` is set). */
  readonly outSize: number;
  /** Size of the stderr file. */
  readonly errSize: number;
  /** New stdout bytes. */
  readonly out: Uint8Array;
  /** New stderr bytes. */
  readonly err: Uint8Array;
}

function decode64(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  return Uint8Array.from(atob(clean), (c) => c.charCodeAt(0));
}

/** Parses `read.sh`'s output; malformed output is an error naming it. */
export function parseRead(text: string): ReadResult {
  const newline = text.indexOf("\n");
  const header = (newline < 0 ? text : text.slice(0, newline)).trim().split(/\s+/);
  const rest = newline < 0 ? "" : text.slice(newline + 1);
  if (header.length !== 4) throw new Error(`unexpected reader output: ${text.slice(0, 80)}`);
  const [status, notFound, outSize, errSize] = header;
  const lines = rest.split("\n");
  const dot = lines.indexOf(".");
  if (dot < 0) throw new Error(`unexpected reader output: ${text.slice(0, 80)}`);
  return {
    status: status === "-" ? undefined : Number(status),
    notFound: notFound === "1",
    outSize: Number(outSize),
    errSize: Number(errSize),
    out: decode64(lines.slice(0, dot).join("")),
    err: decode64(lines.slice(dot + 1).join("")),
  };
}
