/**
 * How the agent starts in the guest: a shell script in the share (mount the share, run the
 * guest's Deno on the agent's sources from the share, listening on the agent's endpoint),
 * run by cloud-init under vz, and by the QEMU test guest's agent in tests. One script for
 * both, so the tests run what a vz guest runs.
 *
 * @module
 */

import { AGENT_DIR, AGENT_VSOCK_PORT, GUEST_SHARE, SHARE_TAG } from "./vm_spec.ts";

/** How the guest mounts the share. */
export type ShareMount = "virtiofs" | "9p";

/** What the start script does. */
export interface StartScriptOptions {
  /** The share's filesystem: virtiofs under vz, 9p in the QEMU test guest. */
  readonly mount: ShareMount;
  /**
   * A virtio-serial port, by name, to serve on instead of the vz vsock port (the QEMU test
   * guest): the script finds it in /sys/class/virtio-ports and gives it to the agent as its
   * stdin and stdout (`--listen=stdio`).
   */
  readonly serialPort?: string;
}

/** Single-quotes a word for sh. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The start script. It runs the agent in the foreground (`exec`): a supervisor (systemd in
 * the vz guest) restarts it. `lib/` beside the Deno binary, when present, holds the shared
 * libraries of a guest without them (the test guest), used through their own loader.
 */
export function startScript(options: StartScriptOptions): string {
  const listen = options.serialPort === undefined ? `vsock:${AGENT_VSOCK_PORT}` : "stdio";
  const mount = options.mount === "virtiofs"
    ? `mount -t virtiofs ${SHARE_TAG} ${GUEST_SHARE}`
    : `mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 ${SHARE_TAG} ${GUEST_SHARE}`;
  const dir = `${GUEST_SHARE}/${AGENT_DIR}`;
  return [
    "#!/bin/sh",
    "# Written by PocketCI: starts the guest agent from the shared directory.",
    "set -e",
    `mkdir -p ${GUEST_SHARE}`,
    // /proc/mounts rather than mountpoint(1), which a minimal busybox lacks.
    `grep -qs " ${GUEST_SHARE} " /proc/mounts || ${mount}`,
    `dir=${dir}`,
    "export DENO_DIR=/var/tmp/pocketci/deno NO_COLOR=1",
    "mkdir -p /var/tmp/pocketci/tasks",
    `set -- run -A --unstable-vsock --no-check --no-config --no-prompt "$dir/src/agent/main.ts" --listen=${
      shellQuote(listen)
    }`,
    ...(options.serialPort === undefined ? [] : [
      'port=""',
      "for p in /sys/class/virtio-ports/*; do",
      `  [ "$(cat "$p/name" 2>/dev/null)" = ${
        shellQuote(options.serialPort)
      } ] && port=/dev/\${p##*/}`,
      "done",
      `[ -n "$port" ] || { echo "no virtio-serial port named ${options.serialPort}" >&2; exit 1; }`,
      // One read-write open on stdin, duplicated to stdout: a port can be opened only once.
      'exec <>"$port" >&0',
    ]),
    'if [ -d "$dir/lib" ]; then',
    '  loader=$(ls "$dir"/lib/ld-linux-* | head -n 1)',
    '  exec "$loader" --library-path "$dir/lib" "$dir/deno" "$@"',
    "fi",
    'exec "$dir/deno" "$@"',
    "",
  ].join("\n");
}

/**
 * The cloud-init user-data of a vz guest: a systemd unit running the start script (restarted
 * if it exits), enabled and started; no package installs, no network needed.
 */
export function userData(): string {
  const script = `${GUEST_SHARE}/${AGENT_DIR}/start.sh`;
  return [
    "#cloud-config",
    "write_files:",
    "  - path: /etc/systemd/system/pocketci-agent.service",
    "    permissions: '0644'",
    "    content: |",
    "      [Unit]",
    "      Description=PocketCI guest agent",
    "      After=local-fs.target",
    "      [Service]",
    `      ExecStart=/bin/sh ${script}`,
    "      Restart=always",
    "      RestartSec=1",
    "      [Install]",
    "      WantedBy=multi-user.target",
    "runcmd:",
    `  - [sh, -c, "mkdir -p ${GUEST_SHARE} && (grep -qs ' ${GUEST_SHARE} ' /proc/mounts || mount -t virtiofs ${SHARE_TAG} ${GUEST_SHARE})"]`,
    "  - [systemctl, daemon-reload]",
    "  - [systemctl, enable, --now, pocketci-agent.service]",
    "",
  ].join("\n");
}
