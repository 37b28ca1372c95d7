#!/usr/bin/env bash
# Prepares the qemu driver's test guest (idempotent, Debian, root): installs QEMU, qemu-img, the
# guest agent and an ISO tool, then builds a minimal guest from Debian packages (no download of
# any image): the stock Debian kernel (unpacked, never installed as the host's) and an initramfs
# holding busybox, the virtio/9p modules and qemu-ga with its shared libraries. Its /init loads
# the modules, finds the virtio-serial port named org.qemu.guest_agent.0 and runs qemu-ga on it;
# the driver mounts the 9p shares itself through the agent, as it does on any guest.
#
# The result is cached under $POCKETCI_QEMU_GUEST_CACHE (default /var/cache/pocketci-test/qemu)
# in a directory named after this script's hash, and `current` links to it, so later CI runs on
# the same machine skip the build. Files: vmlinuz, initrd.img, base.qcow2 (an empty disk the
# driver overlays), vmlinux (the same kernel uncompressed, booted ~3 s faster), guest.json. Cold build: about a minute (mostly apt).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

cache_root=${POCKETCI_QEMU_GUEST_CACHE:-/var/cache/pocketci-test/qemu}
hash=$(sha256sum "$0" | cut -c1-16)
out="$cache_root/$hash"

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
[ -x /usr/sbin/qemu-ga ] || need+=(qemu-guest-agent)
command -v genisoimage >/dev/null 2>&1 || need+=(genisoimage)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx insmod || need+=(busybox-static)
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup_qemu: installing ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -f "$out/guest.json" ]; then
  ln -sfn "$hash" "$cache_root/current"
  echo "setup_qemu: test guest cached in $out"
  exit 0
fi

started=$(date +%s)
work=$(mktemp -d)
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache_root"

# The kernel package of the current Debian kernel ABI, unpacked (not installed).
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)
if [ -z "$kpkg" ]; then
  apt-get update -qq
  kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)
fi
[ -n "$kpkg" ] || { echo "setup_qemu: cannot find the linux-image-*-amd64 package" >&2; exit 1; }
echo "setup_qemu: unpacking $kpkg"
mkdir "$work/deb"
id _apt >/dev/null 2>&1 && chown _apt "$work/deb"
(cd "$work/deb" && apt-get download -qq "$kpkg" >/dev/null)
dpkg-deb -x "$work"/deb/"$kpkg"_*.deb "$work/kernel"
kver=${kpkg#linux-image-}
moddir="$work/kernel/lib/modules/$kver"
[ -d "$moddir" ] || { echo "setup_qemu: no modules for $kver in $kpkg" >&2; exit 1; }

root="$work/root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,mnt,root,var,lib/modules,usr/bin,usr/sbin}
ln -s ../run "$root/var/run"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done

# Loaded in dependency order (read from each module's modinfo `depends=`), uncompressed so
# busybox insmod can load them.
modules="virtio_pci virtio_console 9pnet_virtio 9p"
: >"$root/lib/modules/order"
module_file() { find "$moddir" -name "$1.ko*" | head -n 1; }
add_module() {
  grep -qx "$1" "$root/lib/modules/order" && return 0
  local file
  file=$(module_file "$1")
  if [ -z "$file" ]; then
    grep -q "/$1.ko" "$moddir/modules.builtin" && return 0 # built into this kernel
    echo "setup_qemu: module $1 not found in $kpkg" >&2
    exit 1
  fi
  case "$file" in
    *.ko.xz) xz -dc "$file" >"$work/$1.ko" ;;
    *.ko.zst) zstd -qdc "$file" >"$work/$1.ko" ;;
    *.ko.gz) gzip -dc "$file" >"$work/$1.ko" ;;
    *) cp "$file" "$work/$1.ko" ;;
  esac
  local dep
  for dep in $(tr '\0' '\n' <"$work/$1.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
    add_module "$dep"
  done
  mv "$work/$1.ko" "$root/lib/modules/$1.ko"
  echo "$1" >>"$root/lib/modules/order"
}
for module in $modules; do add_module "$module"; done

cp /usr/sbin/qemu-ga "$root/usr/sbin/qemu-ga"
for lib in $(ldd /usr/sbin/qemu-ga | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

cat >"$root/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname pocketci-guest
echo "pocketci-guest: init at $(cut -d" " -f1 /proc/uptime) s, loading modules"
while read -r module; do insmod "/lib/modules/$module.ko" || echo "pocketci-guest: insmod $module failed"; done </lib/modules/order
port=""
for try in $(seq 1 100); do
  for dir in /sys/class/virtio-ports/*; do
    [ -r "$dir/name" ] && [ "$(cat "$dir/name")" = org.qemu.guest_agent.0 ] && port=/dev/${dir##*/}
  done
  [ -n "$port" ] && [ -e "$port" ] && break
  sleep 0.05
done
if [ -z "$port" ]; then echo "pocketci-guest: no org.qemu.guest_agent.0 port"; exec sh; fi
echo "pocketci-guest: qemu-ga on $port at $(cut -d" " -f1 /proc/uptime) s"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
while true; do
  qemu-ga -m virtio-serial -p "$port" -t /run
  echo "pocketci-guest: qemu-ga exited with $?, restarting"
  sleep 0.2
done
EOF
chmod 0755 "$root/init"

# Builds killed half-way (their PID, the name's suffix, is gone).
for stale in "$cache_root"/.build-[0-9a-f]*-[0-9]*; do
  [ -d "$stale" ] && ! kill -0 "${stale##*-}" 2>/dev/null && rm -rf "$stale"
done
staging="$cache_root/.build-$hash-$$"
rm -rf "$staging"
mkdir -p "$staging"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$staging/initrd.img")
cp "$work/kernel/boot/vmlinuz-$kver" "$staging/vmlinuz"
# The uncompressed kernel (ELF with a PVH entry point) boots about 3 s faster under TCG than the
# bzImage, which decompresses itself in emulated code first.
offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$staging/vmlinuz" | head -n 1 | cut -d: -f1 || true)
if [ -n "$offset" ]; then
  tail -c +"$((offset + 1))" "$staging/vmlinuz" | xz -dc 2>/dev/null >"$staging/vmlinux" || true
fi
if ! head -c 4 "$staging/vmlinux" 2>/dev/null | grep -q ELF; then
  echo "setup_qemu: could not unpack an ELF vmlinux from the bzImage; tests boot vmlinuz" >&2
  rm -f "$staging/vmlinux"
fi
qemu-img create -q -f qcow2 "$staging/base.qcow2" 64M
cat >"$staging/guest.json" <<EOF
{"kernel":"$kpkg","append":"console=ttyS0 panic=-1 quiet","built":"$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
EOF
rm -rf "$out"
mv "$staging" "$out"
ln -sfn "$hash" "$cache_root/current"
# Guests built by earlier versions of this script.
for old in "$cache_root"/*; do
  name=${old##*/}
  if [ "$name" != "$hash" ] && [ -d "$old" ] && [ ! -L "$old" ] && [[ $name =~ ^[0-9a-f]{16}$ ]]; then rm -rf "$old"; fi
done
echo "setup_qemu: test guest built in $(($(date +%s) - started)) s: $out"
