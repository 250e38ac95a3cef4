#!/usr/bin/env bash
# Smoke check of the two-host test bed made by up.sh: launches one instance on each
# nested LXD with the macvlan profile, waits for its DHCP address from the LAN bridge,
# pings instance to instance across the hosts (and from this machine), then deletes
# them. Every wait is bounded. KEEP=1 leaves the instances running.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/multihost/env.sh
source "$here/env.sh"

t0=$SECONDS
PING_COUNT="${PING_COUNT:-3}"

# ICMP echo without iputils (the image has no ping): a raw socket from python3.
# Usage: python3 -c "$ping_py" ADDRESS COUNT; exits 0 when every echo came back.
ping_py='
import os, socket, struct, sys, time
dst, count = sys.argv[1], int(sys.argv[2])
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident, ok = os.getpid() & 0xffff, 0
for seq in range(count):
    body = struct.pack("!HH", ident, seq) + b"vrrp-lxd"
    pkt = struct.pack("!BBH", 8, 0, csum(struct.pack("!BBH", 8, 0, 0) + body)) + body
    t, deadline = time.time(), time.time() + 2
    sock.sendto(pkt, (dst, 0))
    while time.time() < deadline:
        sock.settimeout(max(deadline - time.time(), 0.01))
        try:
            data, (src, _) = sock.recvfrom(2048)
        except socket.timeout:
            break
        h = (data[0] & 0x0f) * 4
        if src == dst and data[h] == 0 and struct.unpack("!HH", data[h + 4:h + 8]) == (ident, seq):
            ok += 1
            print("reply from %s seq=%d %.1f ms" % (src, seq, (time.time() - t) * 1000))
            break
    else:
        pass
    time.sleep(0.2)
print("%s: %d/%d replies" % (dst, ok, count))
sys.exit(0 if ok == count else 1)
'

read -r range_lo range_hi <<<"${MH_DHCP_RANGE/-/ }"
in_range() {  # ADDRESS: inside the LAN bridge's DHCP range?
  python3 -c 'import ipaddress as i,sys; a,l,h=map(i.ip_address,sys.argv[1:]); sys.exit(0 if l<=a<=h else 1)' \
    "$1" "$range_lo" "$range_hi"
}

names=()
smoke_prefix=mh-smoke
[[ "$MH_CLUSTER" != 1 ]] || smoke_prefix=cl-smoke
for i in "${!MH_HOSTS[@]}"; do names+=("$smoke_prefix-$((i + 1))"); done

cleanup() {
  [[ "${KEEP:-0}" == 1 ]] && return 0
  local i
  for i in "${!MH_HOSTS[@]}"; do
    if timeout 30 lxc exec "${MH_HOSTS[$i]}" -- lxc info "${names[$i]}" >/dev/null 2>&1; then
      timeout 60 lxc exec "${MH_HOSTS[$i]}" -- lxc delete -f "${names[$i]}" >/dev/null 2>&1 \
        || echo "warning: could not delete ${names[$i]} on ${MH_HOSTS[$i]}" >&2
    fi
  done
}
cleanup   # leftovers of an interrupted run
trap cleanup EXIT

for i in "${!MH_HOSTS[@]}"; do
  h="${MH_HOSTS[$i]}" n="${names[$i]}"
  lxc info "$h" >/dev/null 2>&1 || mh_die "$h does not exist: run scripts/multihost/up.sh"
  mh_step "check: $h: lxc launch $VRRP_IMAGE $n -p default -p $MH_NESTED_PROFILE"
  t=$SECONDS
  # On the cluster every member sees every instance: --target puts each on its own.
  target=()
  [[ "$MH_CLUSTER" != 1 ]] || target=(--target "$h")
  timeout "$MH_TIMEOUT" lxc exec "$h" -- lxc --project default launch "$VRRP_IMAGE" "$n" \
    -p default -p "$MH_NESTED_PROFILE" "${target[@]}" >/dev/null || mh_die "$h: launch of $n failed or took over ${MH_TIMEOUT}s"
  echo "    launched in $((SECONDS - t))s"
  if [[ "$MH_CLUSTER" == 1 ]]; then
    at="$(lxc exec "$h" -- lxc query "/1.0/instances/$n" | python3 -c 'import json,sys; print(json.load(sys.stdin)["location"])')"
    [[ "$at" == "$h" ]] || mh_die "$n was placed on $at, not on its target $h"
  fi
done

declare -A ip
dhcp_addr() {  # HOST INSTANCE: prints the instance's eth0 IPv4 once it has one in range
  local a
  a="$(lxc exec "$1" -- lxc --project default list "$2" -c 4 --format csv | grep -oE '([0-9]+\.){3}[0-9]+ \(eth0\)' | cut -d' ' -f1 | head -n1)"
  [[ -n "$a" ]] && in_range "$a" && echo "$a"
}
for i in "${!MH_HOSTS[@]}"; do
  h="${MH_HOSTS[$i]}" n="${names[$i]}"
  mh_wait "$MH_TIMEOUT" "$n on $h: a DHCP address in $MH_DHCP_RANGE" dhcp_addr "$h" "$n"
  ip[$n]="$(dhcp_addr "$h" "$n")"
  echo "    $n on $h: ${ip[$n]} (after $((SECONDS - t0))s)"
done

# Instance to instance across the hosts, both ways, then this machine to each.
for i in "${!MH_HOSTS[@]}"; do
  j=$(( (i + 1) % ${#MH_HOSTS[@]} ))
  ((i != j)) || break
  src="${names[$i]}" dst="${names[$j]}"
  mh_step "check: ping ${ip[$dst]} ($dst on ${MH_HOSTS[$j]}) from $src on ${MH_HOSTS[$i]}"
  timeout 30 lxc exec "${MH_HOSTS[$i]}" -- lxc --project default exec "$src" -- \
    python3 -c "$ping_py" "${ip[$dst]}" "$PING_COUNT" | sed 's/^/    /' \
    || mh_die "$src cannot reach $dst across the LAN"
done
for n in "${names[@]}"; do
  route="$(ip route get "${ip[$n]}")"
  grep -q " dev $MH_BRIDGE " <<<"$route" || mh_die "${ip[$n]} is not routed via $MH_BRIDGE: $route"
  mh_step "check: ping ${ip[$n]} ($n) from this machine"
  timeout 30 python3 -c "$ping_py" "${ip[$n]}" "$PING_COUNT" | sed 's/^/    /' \
    || mh_die "this machine cannot reach $n"
done

cleanup
trap - EXIT
mh_step "check passed in $((SECONDS - t0))s (instances deleted)"
