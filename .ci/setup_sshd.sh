#!/usr/bin/env bash
# Prepares OpenSSH for the docker-over-SSH tests (idempotent, Debian, root).
# The tests start their own sshd (tests/docker/sshd_fixture.ts): on 127.0.0.1 at a free port,
# with a fresh host key, a fresh client key in a temporary home directory, an authorized_keys
# file and a known_hosts entry, and stop it afterwards. So this script only installs
# openssh-server, creates sshd's privilege-separation directory and checks that sshd can run.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null 2>&1; then
  echo "setup_sshd: installing openssh-server"
  apt-get update -qq
  apt-get install -y -qq openssh-server >/dev/null
fi
mkdir -p /run/sshd
chmod 0755 /run/sshd

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ssh-keygen -q -t ed25519 -N "" -f "$dir/host_key"
/usr/sbin/sshd -t -f /dev/null -h "$dir/host_key" -o ListenAddress=127.0.0.1 -o PidFile=none
echo "setup_sshd: $(/usr/sbin/sshd -V 2>&1 | head -n 1 || true) ready (tests start their own sshd)"
