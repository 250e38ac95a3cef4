#!/usr/bin/env bash
# Builds and imports the tiny image used to launch many instances cheaply:
# busybox-static, an init that runs `udhcpc -i eth0` and then sleeps. A few MB
# per instance with the `dir` storage driver instead of the base image's ~500 MB.
# Idempotent: the image carries a hash of this script and is rebuilt only when
# it changes. Usage: bench/inventory-tiny-image.sh [ALIAS] (default vrrp-lxd/tiny)
set -euo pipefail

alias_name="${1:-${VRRP_TINY_IMAGE:-vrrp-lxd/tiny}}"
recipe_hash="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"

if lxc image show "$alias_name" 2>/dev/null | grep -q "vrrp_lxd_recipe: \"\?$recipe_hash"; then
  echo "==> image $alias_name is current ($recipe_hash)"
  exit 0
fi
if [[ ! -x /bin/busybox ]] || ! file -L /bin/busybox 2>/dev/null | grep -q static; then
  if ! dpkg -s busybox-static >/dev/null 2>&1; then
    echo "==> apt-get install busybox-static"
    DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >/dev/null
  fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,run,tmp,var/run,usr/share/udhcpc}
install -m 0755 /bin/busybox "$root/bin/busybox"
for applet in sh ip ifconfig route udhcpc sleep cat echo mount hostname ls ps kill; do
  ln -s busybox "$root/bin/$applet"
done

cat >"$root/usr/share/udhcpc/default.script" <<'SCRIPT'
#!/bin/sh
# udhcpc hook: apply the lease to the interface.
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$router" ]; then ip route replace default via "${router%% *}" dev "$interface"; fi
    ;;
esac
exit 0
SCRIPT
chmod 0755 "$root/usr/share/udhcpc/default.script"

cat >"$root/sbin/init" <<'INIT'
#!/bin/sh
# PID 1 of the tiny image: loopback up, DHCP on eth0 in the background, sleep.
ip link set lo up
[ -f /etc/hostname ] && hostname "$(cat /etc/hostname)"
udhcpc -i eth0 -b -q -S -s /usr/share/udhcpc/default.script >/dev/null 2>&1 || \
  udhcpc -i eth0 -b -S -s /usr/share/udhcpc/default.script >/dev/null 2>&1
trap 'exit 0' TERM INT PWR
while :; do sleep 3600 & wait $!; done
INIT
chmod 0755 "$root/sbin/init"
printf 'root:x:0:0:root:/:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"

mkdir -p "$work/meta/templates"
cat >"$work/meta/metadata.yaml" <<META
architecture: x86_64
creation_date: $(date +%s)
properties:
  os: busybox
  release: static
  description: vrrp-lxd tiny (busybox-static, udhcpc on eth0)
  vrrp_lxd_recipe: "$recipe_hash"
templates:
  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
META
printf '{{ container.name }}\n' >"$work/meta/templates/hostname.tpl"

tar -C "$root" --numeric-owner -czf "$work/rootfs.tar.gz" .
tar -C "$work/meta" -czf "$work/meta.tar.gz" metadata.yaml templates
if lxc image show "$alias_name" >/dev/null 2>&1; then
  lxc image alias delete "$alias_name"
fi
lxc image import "$work/meta.tar.gz" "$work/rootfs.tar.gz" --alias "$alias_name" >/dev/null
echo "==> image $alias_name imported ($recipe_hash, $(du -k "$work/rootfs.tar.gz" | cut -f1) KB)"
