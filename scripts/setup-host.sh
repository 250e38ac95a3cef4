#!/usr/bin/env bash
# Prepares a Debian 12 host for vrrp-lxd: packages, Rust musl target, the Ansible
# venv, a running LXD with the project's own isolated bridge, and the base image.
# Every step checks before it acts, so running it again is cheap.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
source "$here/env.sh"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

case "$VRRP_POOL_DRIVER" in
  auto | btrfs | dir) ;;
  *) echo "VRRP_POOL_DRIVER=$VRRP_POOL_DRIVER: use auto, btrfs or dir" >&2; exit 1 ;;
esac
case "$VRRP_BACKEND" in
  lxd | incus) ;;
  *) echo "BACKEND=$VRRP_BACKEND: use lxd or incus" >&2; exit 1 ;;
esac

# btrfs-progs: LXD's btrfs driver runs mkfs.btrfs and btrfs (the storage pool below).
apt_packages=(lxd iptables nftables debootstrap musl-tools python3-venv jq curl knot-dnsutils btrfs-progs)
if [[ "$VRRP_BACKEND" == incus ]]; then
  # Incus takes LXD's place (setup-incus.sh installs it; Debian 13 has no lxd).
  for i in "${!apt_packages[@]}"; do [[ "${apt_packages[i]}" != lxd ]] || unset 'apt_packages[i]'; done
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  step "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  step "apt: packages present"
fi

# scripts/preflight.sh has checked the toolchain: rustup, or a rustc that has
# the musl standard library already.
if [[ ! -d "$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-musl/lib" ]]; then
  step "rustup: adding x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl
fi

# make lint and scripts/test.sh check for unused dependencies with cargo-machete.
if [[ "$(cargo machete --version 2>/dev/null)" != *"0.9.2"* ]]; then
  step "cargo: installing cargo-machete 0.9.2"
  cargo install --locked cargo-machete --version 0.9.2
fi

# The venv is keyed by the requirements file, so a changed pin builds a new one.
req="$VRRP_ROOT/requirements.txt"
stamp="$VRRP_VENV/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -x "$VRRP_VENV/bin/ansible-playbook" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  step "venv: installing Ansible into $VRRP_VENV"
  # Debian's python, not a pyenv build that may be first on PATH.
  /usr/bin/python3 -m venv "$VRRP_VENV"
  "$VRRP_VENV/bin/pip" install -q --upgrade pip
  "$VRRP_VENV/bin/pip" install -q -r "$req"
  echo "$want" >"$stamp"
else
  step "venv: up to date ($VRRP_VENV)"
fi

# ansible-test's virtual environments for the collection's sanity test
# (scripts/collection-sanity.sh), from the package index; made again only when
# ansible-test's pinned requirements change.
if ! out="$(bash "$here/collection-sanity.sh" --prime 2>&1)"; then
  echo "$out" >&2
  exit 1
fi
step "${out##*$'\n'}"

# Every container runs systemd, which holds inotify instances; the kernel's default
# of 128 per user runs out at a few dozen containers (LXD's production settings).
sysctl_conf=/etc/sysctl.d/60-vrrp-lxd.conf
inotify=(fs.inotify.max_user_instances=8192 fs.inotify.max_user_watches=1048576 fs.inotify.max_queued_events=1048576)
inotify_conf="$(printf '%s\n' "${inotify[@]/=/ = }")"
if [[ "$(cat "$sysctl_conf" 2>/dev/null)" != "$inotify_conf" ]]; then
  step "sysctl: inotify limits for many containers"
  printf '%s\n' "$inotify_conf" >"$sysctl_conf"
fi
for kv in "${inotify[@]}"; do
  key="${kv%%=*}"; want="${kv#*=}"
  if (( $(sysctl -n "$key") < want )); then sysctl -qw "$kv"; fi
done

if [[ "$VRRP_BACKEND" == incus ]]; then
  "$here/setup-incus.sh"
  step "host ready (Incus)"
  exit 0
fi

if ! lxc info >/dev/null 2>&1; then
  step "lxd: starting the daemon"
  if ! systemctl start lxd 2>/dev/null || ! lxd waitready --timeout=20 2>/dev/null; then
    setsid nohup lxd --group root >>/var/log/lxd-daemon.log 2>&1 </dev/null &
  fi
  lxd waitready --timeout=60
fi

# ---- storage pool
# Copy-on-write where the kernel has btrfs: a btrfs pool on a loop file that LXD
# makes and mounts itself. The image is unpacked once into the pool and every
# instance is a snapshot of it (`lxc launch` ~1 s), where `dir` copies the whole
# image for each instance (3-6 s; docs/performance.md). `dir` elsewhere. $pool is
# the pool the profile's root disk uses from here on; one line says which and why.
pool_driver() { { lxc query "/1.0/storage-pools/$1" 2>/dev/null || true; } | jq -r '.driver // empty'; }
btrfs_unusable() { # prints why btrfs cannot be used here, nothing when it can
  if ! grep -qw btrfs /proc/filesystems && ! { modprobe -q btrfs 2>/dev/null && grep -qw btrfs /proc/filesystems; }; then
    echo "the kernel has no btrfs (not in /proc/filesystems and modprobe btrfs failed)"
  elif ! command -v mkfs.btrfs >/dev/null; then
    echo "mkfs.btrfs is missing (apt-get install btrfs-progs)"
  elif [[ ! -e /dev/loop-control ]]; then
    echo "no loop devices here (/dev/loop-control is missing)"
  fi
}
pool="$VRRP_POOL"
have="$(pool_driver "$pool")"
if [[ -n "$have" ]]; then
  step "lxd: storage pool $pool ($have) present"
else
  why=""
  if [[ "$VRRP_POOL_DRIVER" == dir ]]; then
    why="VRRP_POOL_DRIVER=dir"
  else
    why="$(btrfs_unusable)"
    if [[ -z "$why" ]]; then
      if err="$(lxc storage create "$pool" btrfs size="$VRRP_POOL_SIZE" 2>&1 >/dev/null)"; then
        step "lxd: storage pool $pool: btrfs on a $VRRP_POOL_SIZE loop file ($(lxc storage get "$pool" source)), since the kernel has btrfs: each instance is a snapshot of the image"
        free_kib="$(df -Pk -- "$(dirname "$(lxc storage get "$pool" source)")" | awk 'NR == 2 { print $4 }')"
        size_kib="$(( $(numfmt --from=iec-i "${VRRP_POOL_SIZE%B}" 2>/dev/null || echo 0) / 1024 ))"
        if ((size_kib > free_kib)); then
          echo "    note: the loop file may grow to $VRRP_POOL_SIZE but only $((free_kib / 1048576)) GiB are free on its file system"
        fi
      else
        why="lxc storage create $pool btrfs failed: ${err//$'\n'/ }"
      fi
    fi
    if [[ -n "$why" && "$VRRP_POOL_DRIVER" == btrfs ]]; then
      echo "VRRP_POOL_DRIVER=btrfs, but btrfs cannot be used: $why" >&2
      exit 1
    fi
  fi
  if [[ -n "$why" ]]; then
    pool="$VRRP_POOL_DIR"
    if [[ -z "$(pool_driver "$pool")" ]]; then
      lxc storage create "$pool" dir >/dev/null
      step "lxd: storage pool $pool: dir, each instance a full copy of the image, since $why"
    else
      step "lxd: storage pool $pool ($(pool_driver "$pool")) present; not btrfs, since $why"
    fi
  fi
fi

if ! lxc network show "$VRRP_BRIDGE" >/dev/null 2>&1; then
  step "lxd: bridge $VRRP_BRIDGE ($VRRP_SUBNET, NAT off)"
  lxc network create "$VRRP_BRIDGE" ipv4.address="$VRRP_BRIDGE_ADDR" ipv4.nat=false \
    ipv6.address=none ipv4.dhcp.ranges="$VRRP_DHCP_RANGE" dns.domain=lxd
fi
# The bridge's dnsmasq answers for the instances only: it never forwards a
# query upstream, so no name lookup of an instance leaves this machine.
if [[ "$(lxc network get "$VRRP_BRIDGE" raw.dnsmasq)" != *no-resolv* ]]; then
  step "lxd: bridge $VRRP_BRIDGE resolves nothing upstream (raw.dnsmasq: no-resolv)"
  lxc network set "$VRRP_BRIDGE" raw.dnsmasq "no-resolv"
fi

if ! lxc profile show "$VRRP_PROFILE" >/dev/null 2>&1; then
  step "lxd: profile $VRRP_PROFILE"
  lxc profile create "$VRRP_PROFILE"
  lxc profile device add "$VRRP_PROFILE" root disk path=/ pool="$pool"
  lxc profile device add "$VRRP_PROFILE" eth0 nic network="$VRRP_BRIDGE" name=eth0
fi

# The profile's root disk on $pool. LXD refuses to change the pool of a
# profile's root disk while any instance, running or stopped, takes its root
# disk from that profile ("At least one instance relies on this profile's root
# disk device"). So each such instance first gets the device as its own
# (`lxc config device override`: the same pool, nothing is copied, a running
# instance goes on running), then the profile changes. Instances made from then
# on go to $pool; the existing ones stay on the old pool until they are deleted.
old_pool="$(lxc profile device get "$VRRP_PROFILE" root pool 2>/dev/null || true)"
if [[ -z "$old_pool" ]]; then
  step "lxd: profile $VRRP_PROFILE: root disk on $pool"
  lxc profile device add "$VRRP_PROFILE" root disk path=/ pool="$pool"
elif [[ "$old_pool" != "$pool" ]]; then
  pinned=()
  while IFS=$'\t' read -r name project; do
    [[ -n "$name" ]] || continue
    lxc config device override "$name" root --project "$project" >/dev/null
    pinned+=("$name")
  done < <(lxc query "/1.0/profiles/$VRRP_PROFILE" | jq -r '.used_by[]? | select(startswith("/1.0/instances/"))' |
    while read -r url; do
      # Only instances whose root disk is this profile's: no root disk of
      # their own, and the expanded one on the old pool.
      lxc query "$url" | jq -r --arg pool "$old_pool" '
        select(([.devices[]? | select(.type == "disk" and .path == "/")] | length) == 0)
        | select(.expanded_devices.root.pool == $pool)
        | [.name, (.project // "default")] | @tsv'
    done)
  lxc profile device set "$VRRP_PROFILE" root pool "$pool"
  msg="lxd: profile $VRRP_PROFILE: root disk moved from pool $old_pool to $pool (new instances)"
  step "$msg${pinned[*]:+; existing instances keep their disks on $old_pool: ${pinned[*]}}"
fi

# The dir pool of earlier set-ups goes once nothing uses it (instances,
# profiles, volumes); until then it stays, and this says what holds it.
if [[ "$pool" != "$VRRP_POOL_DIR" && "$(pool_driver "$VRRP_POOL_DIR")" == dir ]]; then
  users="$(lxc query "/1.0/storage-pools/$VRRP_POOL_DIR" | jq -r '[.used_by[]?
    | capture("^/1.0/(?<kind>[^/]+)/(?<name>[^?]+)([?]project=(?<project>.*))?$")
    | "\(.kind | rtrimstr("s")) \(.name)"
      + (if (.project // "default") == "default" then "" else " (project \(.project))" end)]
    | join(", ")')"
  if [[ -z "$users" ]]; then
    step "lxd: storage pool $VRRP_POOL_DIR (dir): nothing uses it any more, deleting it"
    lxc storage delete "$VRRP_POOL_DIR"
  else
    step "lxd: storage pool $VRRP_POOL_DIR (dir) kept while in use: $users"
  fi
fi

"$here/build-image.sh"
step "host ready"
