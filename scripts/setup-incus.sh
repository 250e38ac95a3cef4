#!/usr/bin/env bash
# Prepares Incus (LXD's community fork, the same /1.0 API) for vrrp-lxd beside
# or instead of LXD: the package (Debian 12: bookworm-backports; Debian 13:
# main), a running daemon, its own pool, bridge and profile, and the project's
# base image. Nothing here reaches for an image server: the image is the one
# scripts/build-image.sh builds from the Debian mirror. Every step checks before
# it acts, so running it again is cheap. Called by setup-host.sh when
# BACKEND=incus and by scripts/test.sh before the Incus test.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
source "$here/env.sh"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
# Every call to the daemon is bounded: a wedged daemon fails the set-up, it
# does not hang it.
inc() { timeout 120 incus "$@"; }

# ---- package
codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
if ! dpkg-query -W -f='${Status}' incus 2>/dev/null | grep -q "ok installed"; then
  export DEBIAN_FRONTEND=noninteractive
  apt_target=()
  if [[ "$codename" == bookworm ]]; then
    # Incus entered Debian with trixie; bookworm has it in backports only.
    if ! grep -rqsE '(^Suites:.*|^deb .*)bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      mirror="$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        | grep -oE 'https?://[^ ]+' | grep -v security | head -n1 || true)"
      mirror="${mirror:-http://deb.debian.org/debian}"
      step "apt: adding bookworm-backports ($mirror)"
      printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" >/etc/apt/sources.list.d/bookworm-backports.sources
    fi
    apt_target=(-t bookworm-backports)
  fi
  step "apt: installing incus ${apt_target[*]}"
  started=$SECONDS
  timeout 300 apt-get update -qq
  timeout 900 apt-get install -y -qq "${apt_target[@]}" incus >/dev/null
  step "apt: incus $(dpkg-query -W -f='${Version}' incus) installed in $((SECONDS - started)) s"
else
  step "apt: incus $(dpkg-query -W -f='${Version}' incus) present"
fi

# ---- daemon
# As with Debian's lxd, there may be no systemd to start the service: then the
# daemon is started by hand, the way the package's own start script does.
if ! inc info >/dev/null 2>&1; then
  step "incus: starting the daemon"
  if ! timeout 60 systemctl start incus 2>/dev/null; then
    mkdir -p /var/log/incus
    PATH="/usr/libexec/incus:$PATH" setsid nohup /usr/libexec/incus/incusd --group incus-admin \
      --logfile=/var/log/incus/incus.log >>/var/log/incus/incusd.out 2>&1 </dev/null &
  fi
  timeout 90 incus admin waitready --timeout=60
fi

# ---- pool, bridge, profile (a preseed holding only what is missing)
# Incus gives each container its guest API at /dev/incus/sock only; Debian 12's
# cloud-init looks for /dev/lxd/sock, finds no data source and disables itself,
# so cloud-init.user-data would be ignored. The same socket mounted at /dev/lxd
# lets cloud-init's LXD data source read it (Incus answers the LXD guest API).
compat_name=lxd-guest-api
compat='{"type": "disk", "source": "/var/lib/incus/guestapi", "path": "/dev/lxd"}'

# The values go through jq, so the preseed is JSON (which YAML reads as it is)
# and any character in a setting stays a literal string.
have() { inc query "$1" >/dev/null 2>&1; }
preseed="$(jq -n \
  --arg pool "$VRRP_INCUS_POOL" --arg bridge "$VRRP_INCUS_BRIDGE" \
  --arg addr "$VRRP_INCUS_BRIDGE_ADDR" --arg range "$VRRP_INCUS_DHCP_RANGE" \
  --arg profile "$VRRP_PROFILE" \
  --arg compat_name "$compat_name" --argjson compat "$compat" \
  --argjson need_pool "$(have "/1.0/storage-pools/$VRRP_INCUS_POOL" && echo false || echo true)" \
  --argjson need_bridge "$(have "/1.0/networks/$VRRP_INCUS_BRIDGE" && echo false || echo true)" \
  --argjson need_profile "$(have "/1.0/profiles/$VRRP_PROFILE" && echo false || echo true)" '
  {}
  + (if $need_pool then {storage_pools: [{name: $pool, driver: "dir"}]} else {} end)
  + (if $need_bridge then {networks: [{name: $bridge, type: "bridge", config: {
      "ipv4.address": $addr, "ipv4.nat": "false", "ipv4.dhcp.ranges": $range,
      "ipv6.address": "none", "dns.domain": "incus",
      "raw.dnsmasq": "no-resolv"}}]} else {} end)
  + (if $need_profile then {profiles: [{name: $profile,
      description: "vrrp-lxd: root disk on \($pool), eth0 on \($bridge)",
      devices: {root: {type: "disk", path: "/", pool: $pool},
                eth0: {type: "nic", network: $bridge, name: "eth0"},
                ($compat_name): $compat}}]} else {} end)')"
if [[ "$preseed" != "{}" ]]; then
  step "incus: $(jq -r '[(.storage_pools[]? | "pool \(.name) (dir)"), (.networks[]? | "bridge \(.name) (\(.config["ipv4.address"]), NAT off, no upstream DNS)"), (.profiles[]? | "profile \(.name)")] | join(", ")' <<<"$preseed")"
  inc admin init --preseed <<<"$preseed"
else
  step "incus: pool $VRRP_INCUS_POOL, bridge $VRRP_INCUS_BRIDGE and profile $VRRP_PROFILE present"
fi
if ! inc profile device get "$VRRP_PROFILE" "$compat_name" source >/dev/null 2>&1; then
  step "incus: profile $VRRP_PROFILE: guest API also at /dev/lxd (for cloud-init)"
  inc profile device add "$VRRP_PROFILE" "$compat_name" disk source=/var/lib/incus/guestapi path=/dev/lxd >/dev/null
fi
# The bridge's dnsmasq answers for the instances only: no name lookup of an
# instance leaves this machine, also on a bridge made before this setting.
if [[ "$(inc network get "$VRRP_INCUS_BRIDGE" raw.dnsmasq)" != *no-resolv* ]]; then
  step "incus: bridge $VRRP_INCUS_BRIDGE resolves nothing upstream (raw.dnsmasq: no-resolv)"
  inc network set "$VRRP_INCUS_BRIDGE" raw.dnsmasq "no-resolv"
fi

# ---- image
# build-image.sh drives `lxc`; Incus's client takes the same image commands, so
# it runs with `incus` in the place of `lxc`. Its recipe check and its cached
# tarballs ($VRRP_IMAGE_CACHE) are shared with LXD: nothing is built twice.
shim="$(mktemp -d)"
trap 'rm -rf "$shim"' EXIT
ln -s "$(command -v incus)" "$shim/lxc"
PATH="$shim:$PATH" timeout 900 "$here/build-image.sh" | sed 's/^==> /==> incus: /'
step "incus ready (socket /var/lib/incus/unix.socket, bridge $VRRP_INCUS_BRIDGE)"
