#!/usr/bin/env bash
# Builds the qemu driver's cloud-init test guest (idempotent, Debian, root): a small Debian root
# filesystem made with debootstrap (systemd, cloud-init, qemu-guest-agent, the Debian kernel) in
# an ext4 qcow2, plus that kernel and its initramfs for direct boot. The driver boots it with its
# own NoCloud seed ISO, so the test proves the cloud-init path end to end: the seed is found by
# its `cidata` label, its user-data runs, and the driver waits for cloud-init to finish.
#
# Cached under $POCKETCI_QEMU_GUEST_CACHE (default /var/cache/pocketci-test/qemu) in
# cloud-<hash of this script>, with `cloud-current` linking to it. Files: base.qcow2,
# vmlinuz, initrd.img, guest.json. Cold build: a few minutes (mostly the package downloads).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

cache_root=${POCKETCI_QEMU_GUEST_CACHE:-/var/cache/pocketci-test/qemu}
hash=$(sha256sum "$0" | cut -c1-16)
out="$cache_root/cloud-$hash"

need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v mke2fs >/dev/null 2>&1 || need+=(e2fsprogs)
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup_qemu_cloud: installing ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -f "$out/guest.json" ]; then
  ln -sfn "cloud-$hash" "$cache_root/cloud-current"
  echo "setup_qemu_cloud: cloud-init test guest cached in $out"
  exit 0
fi

started=$(date +%s)
mkdir -p "$cache_root"
# Removes a build tree, first detaching anything still mounted in it (a build killed with
# SIGKILL leaves its bind mounts of /proc, /sys and /dev behind); never crosses into them.
remove_tree() {
  local mount
  for mount in $(awk -v prefix="$1/" 'index($2, prefix) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$mount" || return 1
  done
  rm -rf --one-file-system "$1"
}
# Work left by builds that were killed (their PID, the name's suffix, is gone).
for stale in "$cache_root"/.build-cloud-* "$cache_root"/.cloud-work-*; do
  [ -e "$stale" ] || continue
  pid=${stale##*-}
  kill -0 "$pid" 2>/dev/null || remove_tree "$stale"
done
work="$cache_root/.cloud-work-$$"
remove_tree "$work"
mkdir -p "$work"
trap 'remove_tree "$work"' EXIT
root="$work/root"
# The mirror apt already uses (a local mirror or proxy on CI machines is honoured).
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\/*\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
echo "setup_qemu_cloud: debootstrap bookworm from $mirror"
fail_with_log() {
  tail -n 25 "$1" >&2
  echo "setup_qemu_cloud: $2 failed" >&2
  exit 1
}
debootstrap --variant=minbase --include=systemd-sysv,udev,kmod bookworm "$root" "$mirror" \
  >"$work/debootstrap.log" 2>&1 || {
  [ -f "$root/debootstrap/debootstrap.log" ] && cat "$root/debootstrap/debootstrap.log" >>"$work/debootstrap.log"
  fail_with_log "$work/debootstrap.log" debootstrap
}
# The rest through apt inside the root, which orders the configuration of a big dependency
# tree (debootstrap --include does not), with services kept from starting.
mounted=()
unmount_all() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
  mounted=()
}
trap 'unmount_all; remove_tree "$work"' EXIT
for fs in proc sys dev; do
  mount --bind "/$fs" "$root/$fs"
  mounted+=("$root/$fs")
done
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
echo "setup_qemu_cloud: installing the kernel, cloud-init and qemu-guest-agent in the root"
{
  chroot "$root" apt-get update -q &&
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      linux-image-amd64 initramfs-tools cloud-init qemu-guest-agent
} >"$work/apt.log" 2>&1 || fail_with_log "$work/apt.log" "apt-get install in the root"
unmount_all
rm -f "$root/usr/sbin/policy-rc.d"

# Only the NoCloud seed (and no network configuration: the guest needs none, and cloud-init
# would otherwise wait for a network that the test does not give it); no locale (the
# `locales` package is not installed).
cat >"$root/etc/cloud/cloud.cfg.d/90-pocketci-test.cfg" <<'EOF'
datasource_list: [NoCloud, None]
network: {config: disabled}
locale: false
EOF
echo 'LABEL=pocketci-root / ext4 defaults 0 1' >"$root/etc/fstab"
# Smaller and faster under TCG: no documentation, no apt lists, no serial getty.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
rm -f "$root"/var/cache/apt/archives/*.deb
# Drivers a headless virtio guest never loads (the initramfs was made with all of them).
kver=$(ls "$root/lib/modules")
for unused in sound drivers/gpu drivers/media drivers/net/wireless drivers/infiniband \
  drivers/staging drivers/isdn drivers/bluetooth drivers/iio drivers/usb drivers/hid drivers/mmc \
  drivers/nfc drivers/net/ethernet net/wireless net/mac80211 net/bluetooth; do
  rm -rf "$root/lib/modules/$kver/kernel/$unused"
done
chroot "$root" depmod "$kver"
rm -rf "$root"/usr/share/locale/*
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
ln -sf /dev/null "$root/etc/systemd/system/getty@tty1.service"

staging="$cache_root/.build-cloud-$hash-$$"
rm -rf "$staging"
mkdir -p "$staging"
cp "$root"/boot/vmlinuz-* "$staging/vmlinuz"
cp "$root"/boot/initrd.img-* "$staging/initrd.img"
chmod 0644 "$staging/vmlinuz" "$staging/initrd.img"
mke2fs -q -t ext4 -L pocketci-root -d "$root" "$work/root.img" 2G
qemu-img convert -O qcow2 "$work/root.img" "$staging/base.qcow2"
cat >"$staging/guest.json" <<EOF
{"kernel":"$kver","append":"root=/dev/vda rw console=ttyS0 panic=-1","built":"$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
EOF
rm -rf "$out"
mv "$staging" "$out"
ln -sfn "cloud-$hash" "$cache_root/cloud-current"
for old in "$cache_root"/cloud-*; do
  name=${old##*/}
  if [ "$name" != "cloud-$hash" ] && [ -d "$old" ] && [ ! -L "$old" ] && [[ $name =~ ^cloud-[0-9a-f]{16}$ ]]; then rm -rf "$old"; fi
done
echo "setup_qemu_cloud: cloud-init test guest built in $(($(date +%s) - started)) s: $out"
