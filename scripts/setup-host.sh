#!/usr/bin/env bash
# Prepares a Debian 12 host for vrrp-lxd: packages, Rust musl target, the Ansible
# venv, a running LXD with the project's own isolated bridge, and the base image.
# Every step checks before it acts, so running it again is cheap.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
source "$here/env.sh"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

apt_packages=(lxd iptables nftables debootstrap musl-tools python3-venv jq curl knot-dnsutils)
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

if ! lxc info >/dev/null 2>&1; then
  step "lxd: starting the daemon"
  if ! systemctl start lxd 2>/dev/null || ! lxd waitready --timeout=20 2>/dev/null; then
    setsid nohup lxd --group root >>/var/log/lxd-daemon.log 2>&1 </dev/null &
  fi
  lxd waitready --timeout=60
fi

if ! lxc storage show "$VRRP_POOL" >/dev/null 2>&1; then
  step "lxd: storage pool $VRRP_POOL"
  lxc storage create "$VRRP_POOL" dir
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
  lxc profile device add "$VRRP_PROFILE" root disk path=/ pool="$VRRP_POOL"
  lxc profile device add "$VRRP_PROFILE" eth0 nic network="$VRRP_BRIDGE" name=eth0
fi

"$here/build-image.sh"
step "host ready"
