#!/usr/bin/env bash
# Makes a Docker engine ready for the docker driver's tests (idempotent, Debian, root):
# installs docker.io, starts dockerd in the background when it is not answering, waits for it,
# and builds the local images the tests use (no registry is reachable here):
#   busybox:latest  from Debian's busybox-static (/bin/busybox plus every applet as a symlink);
#   pocketci-test/entrypoint:latest  busybox with an ENTRYPOINT;
#   pocketci-test/service:latest  busybox whose ENTRYPOINT serves HTTP on the port its CMD names.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
[ -x /bin/busybox ] || missing+=(busybox-static)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup_docker: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! docker version >/dev/null 2>&1; then
  echo "setup_docker: starting dockerd (log: /tmp/dockerd.log)"
  # setsid: dockerd must outlive this script and not share its process group.
  setsid dockerd >/tmp/dockerd.log 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && break
    sleep 0.5
  done
fi
if ! docker version >/dev/null 2>&1; then
  echo "setup_docker: dockerd did not answer within 30 s; last lines of /tmp/dockerd.log:" >&2
  tail -n 20 /tmp/dockerd.log >&2 || true
  exit 1
fi

if ! docker image inspect busybox:latest >/dev/null 2>&1; then
  echo "setup_docker: building busybox:latest from /bin/busybox"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  tar -C "$root" -c . | docker import --change 'ENV PATH=/bin' --change 'CMD ["sh"]' - busybox:latest >/dev/null
fi
# An image with an ENTRYPOINT, to check that the driver clears it unless a task sets one.
if ! docker image inspect pocketci-test/entrypoint:latest >/dev/null 2>&1; then
  echo "setup_docker: building pocketci-test/entrypoint:latest"
  printf 'FROM busybox:latest\nENTRYPOINT ["echo", "from-image-entrypoint"]\n' |
    DOCKER_BUILDKIT=0 docker build -q -t pocketci-test/entrypoint:latest - >/dev/null
fi
# A server image whose ENTRYPOINT and CMD must both run unchanged (services keep them): the
# entrypoint prints a line and serves /www on the port the CMD gives (8080 unless overridden).
if ! docker image inspect pocketci-test/service:latest >/dev/null 2>&1; then
  echo "setup_docker: building pocketci-test/service:latest"
  printf '%s\n' 'FROM busybox:latest' \
    'ENTRYPOINT ["sh", "-c", "echo entrypoint ran with CMD $1; mkdir -p /www; echo served-by-image >/www/index.html; exec httpd -f -v -p $1 -h /www", "entrypoint"]' \
    'CMD ["8080"]' |
    DOCKER_BUILDKIT=0 docker build -q -t pocketci-test/service:latest - >/dev/null
fi
echo "setup_docker: engine $(docker version --format '{{.Server.Version}}') ready, busybox:latest present"
