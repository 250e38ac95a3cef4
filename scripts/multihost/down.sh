#!/usr/bin/env bash
# Removes the two-host test bed that up.sh made: the host containers (and with them
# their nested LXDs and instances), the host profile, the pool, the LAN bridge, and
# the generated files in $MH_ETC (hosts.yml, server certificates, client identity).
# The download caches ($MH_DEBS, $MH_CACHE) stay so the next up.sh needs no network;
# --purge removes them too. Safe to run when nothing (or only part) exists.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/multihost/env.sh
source "$here/env.sh"

purge=0
case "${1:-}" in
  --purge) purge=1 ;;
  "") ;;
  *) mh_die "usage: $0 [--purge]" ;;
esac
[[ $EUID -eq 0 ]] || mh_die "run as root"
t0=$SECONDS

for h in "${MH_HOSTS[@]}"; do
  if lxc info "$h" >/dev/null 2>&1; then
    mh_step "deleting $h"
    timeout "$MH_TIMEOUT" lxc delete -f "$h" || mh_die "could not delete $h within ${MH_TIMEOUT}s"
  fi
done

if lxc profile show "$MH_PROFILE" >/dev/null 2>&1; then
  used="$(lxc profile show "$MH_PROFILE" | sed -n '/^used_by:/,$p' | grep -c '^- ' || true)"
  ((used == 0)) || mh_die "profile $MH_PROFILE is still used by $used instance(s): $(lxc profile show "$MH_PROFILE" | sed -n '/^used_by:/,$p')"
  mh_step "deleting profile $MH_PROFILE"
  lxc profile delete "$MH_PROFILE" >/dev/null
fi

if lxc storage show "$MH_POOL" >/dev/null 2>&1; then
  mh_step "deleting pool $MH_POOL"
  lxc storage delete "$MH_POOL" >/dev/null || mh_die "pool $MH_POOL not empty: $(lxc storage volume list "$MH_POOL" --format csv)"
fi

if lxc network show "$MH_BRIDGE" >/dev/null 2>&1; then
  mh_step "deleting bridge $MH_BRIDGE"
  lxc network delete "$MH_BRIDGE" >/dev/null || mh_die "bridge $MH_BRIDGE still in use: $(lxc network show "$MH_BRIDGE" | sed -n '/^used_by:/,$p')"
fi

if [[ -d "$MH_ETC" ]]; then
  mh_step "removing $MH_ETC"
  rm -rf "$MH_ETC"
  rmdir /etc/vrrp-lxd 2>/dev/null || true
fi

if ((purge)); then
  for d in "$MH_DEBS" "$MH_CACHE"; do
    if [[ -d "$d" ]]; then
      mh_step "removing cache $d"
      rm -rf "$d"
    fi
  done
fi

mh_step "test bed down in $((SECONDS - t0))s"
