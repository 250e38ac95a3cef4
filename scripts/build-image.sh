#!/usr/bin/env bash
# Builds the base image with debootstrap (no image server is reachable) and imports
# it into LXD under $VRRP_IMAGE. The image carries a hash of its recipe, so it is
# rebuilt only when the package list or this script changes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"

packages=(haproxy keepalived apache2 python3 iproute2 procps psmisc curl ifupdown
  isc-dhcp-client systemd-sysv dbus cloud-init python3-cffi-backend locales
  knot knot-dnssecutils knot-dnsutils)
recipe_hash="$( (printf '%s\n' "${packages[@]}"; cat "${BASH_SOURCE[0]}" "$here"/image/*) | sha256sum | cut -c1-16)"

if lxc image show "$VRRP_IMAGE" 2>/dev/null | grep -q "vrrp_lxd_recipe: \"\?$recipe_hash"; then
  echo "==> image $VRRP_IMAGE is current ($recipe_hash)"
  exit 0
fi

# The mirror apt already uses (deb822 "URIs:" or one-line "deb" entries), not comments.
mirror="${VRRP_DEBIAN_MIRROR:-$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
  | grep -oE 'https?://[^ ]+' | grep -v security | head -n1 || true)}"
mirror="${mirror:-http://deb.debian.org/debian}"
work="$VRRP_IMAGE_CACHE/$recipe_hash"
mkdir -p "$work"
rootfs="$work/rootfs"

if [[ ! -f "$work/rootfs.tar.gz" ]]; then
  echo "==> debootstrap bookworm from $mirror (about a minute)"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
    bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log"; exit 1; }
  # eth0 is what cloud-init renders into interfaces.d: its fallback (DHCP) or
  # the instance's cloud-init.network-config. Without a network config, the
  # fallback is brought up at once by eth0-dhcp-early (see that script).
  printf 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n' \
    >"$rootfs/etc/network/interfaces"
  printf 'iface eth0 inet dhcp\n' >"$rootfs/etc/network/eth0-dhcp-early"
  install -D -m 0755 "$here/image/eth0-dhcp-early" "$rootfs/usr/local/lib/vrrp-lxd/eth0-dhcp-early"
  install -D -m 0644 "$here/image/eth0-dhcp-early.service" "$rootfs/etc/systemd/system/eth0-dhcp-early.service"
  mkdir -p "$rootfs/etc/systemd/system/sysinit.target.wants"
  ln -sf ../eth0-dhcp-early.service "$rootfs/etc/systemd/system/sysinit.target.wants/eth0-dhcp-early.service"
  # Each container must get its own machine-id (and so its own DHCP client id).
  : >"$rootfs/etc/machine-id"
  rm -f "$rootfs/var/lib/dbus/machine-id"
  ln -sf /dev/null "$rootfs/etc/systemd/system/systemd-binfmt.service"
  # No LVM snapshots to reap in a container (a quarter of a second of each
  # first boot), and no route to a Debian mirror for apt's daily runs.
  for unit in e2scrub_reap.service e2scrub_all.timer apt-daily.timer apt-daily-upgrade.timer; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
  done
  # Knot DNS serves the topology's zone on the load balancers only; the dns
  # role enables it there.
  rm -f "$rootfs/etc/systemd/system/multi-user.target.wants/knot.service"
  printf 'locale: C.UTF-8\n' >"$rootfs/etc/cloud/cloud.cfg.d/90-vrrp-lxd-locale.cfg"
  printf 'datasource_list: [ LXD, NoCloud, None ]\n' >"$rootfs/etc/cloud/cloud.cfg.d/91-vrrp-lxd-datasource.cfg"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -czf "$work/rootfs.tar.gz.part" .
  mv "$work/rootfs.tar.gz.part" "$work/rootfs.tar.gz"
  rm -rf "$rootfs"
fi

meta="$work/meta"
rm -rf "$meta"
mkdir -p "$meta/templates"
cat >"$meta/metadata.yaml" <<META
architecture: x86_64
creation_date: $(date +%s)
properties:
  os: debian
  release: bookworm
  description: vrrp-lxd base (Debian bookworm, haproxy, keepalived, apache2, knot, cloud-init)
  vrrp_lxd_recipe: "$recipe_hash"
templates:
  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
  /etc/hosts:
    when: [create, copy]
    template: hosts.tpl
  /etc/vrrp-lxd/network-config-given:
    when: [create, copy, start]
    template: network-config-given.tpl
META
printf '{{ container.name }}\n' >"$meta/templates/hostname.tpl"
printf '127.0.0.1 localhost\n127.0.1.1 {{ container.name }}\n::1 localhost ip6-localhost ip6-loopback\n' \
  >"$meta/templates/hosts.tpl"
cp "$here/image/network-config-given.tpl" "$meta/templates/"
tar -C "$meta" -czf "$work/meta.tar.gz" metadata.yaml templates

echo "==> importing $VRRP_IMAGE"
if lxc image show "$VRRP_IMAGE" >/dev/null 2>&1; then
  lxc image alias delete "$VRRP_IMAGE"
fi
lxc image import "$work/meta.tar.gz" "$work/rootfs.tar.gz" --alias "$VRRP_IMAGE" >/dev/null
echo "==> image $VRRP_IMAGE imported ($recipe_hash)"
