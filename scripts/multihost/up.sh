#!/usr/bin/env bash
# Builds the two-host test bed on this one machine (recipe: /work/shared/LXD.md,
# "Two LXD hosts on one machine"):
#   - bridge $MH_BRIDGE plays the LAN (NAT off, no IPv6, dnsmasq never forwards upstream)
#   - system containers vrrp-host-1/2 (nesting, isolated idmap) with fixed addresses
#   - Debian's LXD inside each, packages brought from this host (no mirror is reachable
#     from the bridge), cgroup fix as ExecStartPre, `lxd init --preseed` (HTTPS API,
#     dir pool, default + macvlan profiles), the project image imported locally
#   - a client certificate trusted by both; $MH_ETC/hosts.yml lists URL, pinned server
#     fingerprint, client cert/key and the macvlan profile for each host
# With MH_CLUSTER=1 (`make cluster-up`): three hosts on a LAN of their own, the
# first bootstrapping an LXD cluster and the others joining it with tokens; the
# image, the trust and the pinned certificate are the cluster's, and hosts.yml
# has one entry for it (members are read from the cluster).
# Every step checks before it acts, so a second run is quick. Then runs check.sh
# (one instance per host, cross-host ping) unless MH_CHECK=0.
# Needs scripts/setup-host.sh to have run (LXD up, image imported). Undo: down.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/multihost/env.sh
source "$here/env.sh"

t0=$SECONDS
[[ $EUID -eq 0 ]] || mh_die "run as root"
for tool in lxc openssl curl apt-get sha256sum; do
  command -v "$tool" >/dev/null || mh_die "$tool not found (run scripts/setup-host.sh)"
done
lxc info >/dev/null 2>&1 || mh_die "LXD is not answering (run scripts/setup-host.sh)"
outer_fp="$(lxc image info "$VRRP_IMAGE" 2>/dev/null | awk '/^Fingerprint:/ {print $2}')"
[[ -n "$outer_fp" ]] || mh_die "image $VRRP_IMAGE missing (run scripts/setup-host.sh)"
((${#MH_HOSTS[@]} == ${#MH_ADDRS[@]})) || mh_die "MH_HOSTS and MH_ADDRS differ in length"

# ---------------------------------------------------------------- outer host objects
# Keys that keep the LAN isolated: enforced on every run, not just at creation.
net_keys=(
  "ipv4.address=$MH_BRIDGE_ADDR"
  "ipv4.nat=false"
  "ipv4.dhcp=true"
  "ipv4.dhcp.ranges=$MH_DHCP_RANGE"
  "ipv6.address=none"
  "raw.dnsmasq=no-resolv"
)
if ! lxc network show "$MH_BRIDGE" >/dev/null 2>&1; then
  net="$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_interface(sys.argv[1]).network)' "$MH_BRIDGE_ADDR")"
  if other="$(ip -o route show to "$net" | grep -v "dev $MH_BRIDGE " || true)" && [[ -n "$other" ]]; then
    mh_die "$net is already routed elsewhere: $other"
  fi
  mh_step "lxd: LAN bridge $MH_BRIDGE ($MH_BRIDGE_ADDR, NAT off, no-resolv)"
  lxc network create "$MH_BRIDGE" "${net_keys[@]}" >/dev/null
else
  for kv in "${net_keys[@]}"; do
    k="${kv%%=*}" v="${kv#*=}"
    if [[ "$(lxc network get "$MH_BRIDGE" "$k")" != "$v" ]]; then
      mh_step "lxd: $MH_BRIDGE: setting $k=$v"
      lxc network set "$MH_BRIDGE" "$k" "$v"
    fi
  done
fi

if ! lxc storage show "$MH_POOL" >/dev/null 2>&1; then
  mh_step "lxd: storage pool $MH_POOL (dir)"
  lxc storage create "$MH_POOL" dir >/dev/null
fi

if ! lxc profile show "$MH_PROFILE" >/dev/null 2>&1; then
  mh_step "lxd: host profile $MH_PROFILE"
  lxc profile create "$MH_PROFILE" >/dev/null
fi
for kv in security.nesting=true security.idmap.isolated=true security.idmap.size=400000; do
  k="${kv%%=*}" v="${kv#*=}"
  [[ "$(lxc profile get "$MH_PROFILE" "$k")" == "$v" ]] || lxc profile set "$MH_PROFILE" "$k" "$v"
done
prof_devs="$(lxc profile device list "$MH_PROFILE")"
grep -qx root <<<"$prof_devs" || lxc profile device add "$MH_PROFILE" root disk path=/ pool="$MH_POOL" >/dev/null
grep -qx eth0 <<<"$prof_devs" || lxc profile device add "$MH_PROFILE" eth0 nic network="$MH_BRIDGE" name=eth0 >/dev/null

# ---------------------------------------------------------------- host containers
for i in "${!MH_HOSTS[@]}"; do
  h="${MH_HOSTS[$i]}" addr="${MH_ADDRS[$i]}"
  if ! lxc info "$h" >/dev/null 2>&1; then
    mh_step "$h: creating from $VRRP_IMAGE ($addr)"
    lxc init "$VRRP_IMAGE" "$h" -p "$MH_PROFILE" >/dev/null
  fi
  # The fixed address: eth0 from the profile, overridden on the instance.
  if ! lxc config device show "$h" | grep -q '^eth0:'; then
    lxc config device override "$h" eth0 ipv4.address="$addr" >/dev/null
  elif [[ "$(lxc config device get "$h" eth0 ipv4.address)" != "$addr" ]]; then
    lxc config device set "$h" eth0 ipv4.address "$addr"   # takes effect at the next start
  fi
done
for h in "${MH_HOSTS[@]}"; do
  if [[ "$(lxc info "$h" | awk '/^Status:/ {print $2}')" != RUNNING ]]; then
    mh_step "$h: starting (the first start remaps the rootfs to its own idmap)"
    timeout "$MH_TIMEOUT" lxc start --quiet "$h" || mh_die "$h did not start within ${MH_TIMEOUT}s"
  fi
done

host_ready() {  # systemd has finished booting and eth0 has the fixed address
  local h="$1" addr="$2"
  lxc exec "$h" -- ip -4 -o addr show dev eth0 | grep -q " $addr/" || return 1
  local st
  st="$(lxc exec "$h" -- systemctl is-system-running 2>/dev/null || true)"
  [[ "$st" == running || "$st" == degraded ]]
}
for i in "${!MH_HOSTS[@]}"; do
  mh_wait "$MH_TIMEOUT" "${MH_HOSTS[$i]} booted with ${MH_ADDRS[$i]} on eth0" host_ready "${MH_HOSTS[$i]}" "${MH_ADDRS[$i]}"
done

# hput HOST PATH MODE <CONTENT: writes the file only when its content differs.
hput() {
  local h="$1" path="$2" mode="$3" want have
  want="$(cat)"
  have="$(lxc exec "$h" -- cat "$path" 2>/dev/null || true)"
  [[ "$have" == "$want" ]] && return 1
  printf '%s\n' "$want" | lxc exec "$h" -- sh -c \
    "mkdir -p \"\$(dirname '$path')\" && cat >'$path.tmp' && chmod $mode '$path.tmp' && mv '$path.tmp' '$path'"
  return 0
}

lxd_installed() {
  lxc exec "$1" -- dpkg-query -W -f='${Status}\n' "${MH_PACKAGES[@]}" 2>/dev/null \
    | grep -c '^install ok installed$' | grep -qx "${#MH_PACKAGES[@]}"
}

# ---------------------------------------------------------------- packages (outer host)
# The closure of $MH_PACKAGES that a host lacks: apt on this machine simulates the
# install against the host's own dpkg status, so exactly the missing packages (and any
# upgrades their versions need) are fetched. The manifest lists them; a deb is
# downloaded again only when its file is missing.
manifest="$MH_DEBS/manifest"
fetch_debs() {
  mkdir -p "$MH_DEBS"
  chmod 755 "$MH_DEBS"
  if [[ ! -s "$manifest" ]]; then
    mh_step "debs: resolving ${MH_PACKAGES[*]} against ${MH_HOSTS[0]}'s dpkg status"
    local status="$MH_DEBS/host-dpkg-status" sim
    lxc file pull "${MH_HOSTS[0]}/var/lib/dpkg/status" "$status"
    sim_install() {
      apt-get -s -q -o Dir::State::status="$status" -o APT::Install-Recommends=false \
        install "${MH_PACKAGES[@]}" 2>&1
    }
    if ! sim="$(sim_install)"; then
      mh_step "debs: apt-get update (outer host only)"
      apt-get update -qq
      sim="$(sim_install)" || { echo "$sim" >&2; mh_die "apt cannot resolve ${MH_PACKAGES[*]}"; }
    fi
    sed -nE 's/^Inst ([^ ]+) (\[[^]]*\] )?\(([^ ]+) .*/\1=\3/p' <<<"$sim" >"$manifest.tmp"
    [[ -s "$manifest.tmp" ]] || { echo "$sim" >&2; mh_die "apt simulated no installs"; }
    mv "$manifest.tmp" "$manifest"
  fi
  local spec name ver file n=0
  while read -r spec; do
    name="${spec%%=*}" ver="${spec#*=}"
    file="$(compgen -G "$MH_DEBS/${name}_${ver//:/%3a}_*.deb" | head -n1 || true)"
    if [[ -z "$file" ]]; then
      (cd "$MH_DEBS" && apt-get download -q=2 "$spec" 2>&1 | grep -v 'unsandboxed' || true)
      compgen -G "$MH_DEBS/${name}_${ver//:/%3a}_*.deb" >/dev/null || mh_die "download of $spec failed"
      n=$((n + 1))
    fi
  done <"$manifest"
  ((n == 0)) || mh_step "debs: downloaded $n into $MH_DEBS"
}

# ---------------------------------------------------------------- image and client identity
# Exported once per image fingerprint; the export is pushed into every host.
export_image() {
  local dir="$MH_CACHE/image-$outer_fp"
  if [[ ! -f "$dir/.complete" ]]; then
    mh_step "image: exporting $VRRP_IMAGE ($outer_fp)"
    rm -rf "$MH_CACHE"/image-*
    mkdir -p "$dir"
    lxc image export "$VRRP_IMAGE" "$dir/" >/dev/null
    touch "$dir/.complete"
  fi
  image_dir="$dir"
}

client_crt="$MH_ETC/client.crt" client_key="$MH_ETC/client.key"
mkdir -p "$MH_ETC"
chmod 755 "$MH_ETC"   # hosts.yml and certificates readable; the key is 0600
if [[ ! -s "$client_crt" || ! -s "$client_key" ]]; then
  mh_step "trust: generating the controller's client certificate in $MH_ETC"
  (umask 077
   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes -days 3650 \
     -subj "/CN=vrrp-lxd-controller" -addext extendedKeyUsage=clientAuth \
     -keyout "$client_key.tmp" -out "$client_crt.tmp" 2>/dev/null)
  mv "$client_key.tmp" "$client_key"
  mv "$client_crt.tmp" "$client_crt"
fi
chmod 600 "$client_key"
chmod 644 "$client_crt"
client_fp="$(mh_cert_fp "$client_crt")"

# ---------------------------------------------------------------- each host
preseed() {  # HOST ADDR
  cat <<YAML
config:
  core.https_address: $2:$MH_PORT
  images.auto_update_interval: "0"
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  description: Default LXD profile (root disk on the dir pool)
  devices:
    root:
      path: /
      pool: default
      type: disk
- name: $MH_NESTED_PROFILE
  description: Instances on the LAN through the host's eth0 (macvlan)
  devices:
    eth0:
      name: eth0
      nictype: macvlan
      parent: eth0
      type: nic
YAML
}

lxd_configured() {  # HOST ADDR
  local h="$1" addr="$2"
  [[ "$(lxc exec "$h" -- lxc config get core.https_address 2>/dev/null)" == "$addr:$MH_PORT" ]] \
    && lxc exec "$h" -- lxc storage show default >/dev/null 2>&1 \
    && lxc exec "$h" -- lxc profile device get default root pool 2>/dev/null | grep -qx default \
    && lxc exec "$h" -- lxc profile device get "$MH_NESTED_PROFILE" eth0 nictype 2>/dev/null | grep -qx macvlan
}

declare -A server_fp server_spki
setup_host() {  # HOST ADDR
  local h="$1" addr="$2"

  # Nested containers map 300000 ids of the 400000 the host got. Only root's line is
  # ours: installing lxd adds one for its _lxd user, which is left alone.
  local f others ids_changed=0
  for f in /etc/subuid /etc/subgid; do
    others="$(lxc exec "$h" -- cat "$f" 2>/dev/null | grep -v '^root:' || true)"
    if printf 'root:100000:300000\n%s' "$others" | sed '/^$/d' | hput "$h" "$f" 0644; then
      mh_step "$h: $f: root:100000:300000"
      ids_changed=1
    fi
  done
  if ((ids_changed)) && lxc exec "$h" -- systemctl -q is-active lxd.service 2>/dev/null; then
    mh_step "$h: restarting lxd.service for the new id range"
    lxc exec "$h" -- timeout "$MH_TIMEOUT" systemctl restart lxd.service
  fi

  # The cgroup fix runs before every start of the host's LXD (installed before LXD
  # itself, so the package's first start already has it).
  local changed=0
  hput "$h" /usr/local/sbin/vrrp-cgroup-fix 0755 <"$here/cgroup-fix.sh" && changed=1 || true
  hput "$h" /etc/systemd/system/lxd.service.d/10-vrrp-cgroup-fix.conf 0644 <<'UNIT' && changed=1 || true
[Service]
ExecStartPre=/usr/local/sbin/vrrp-cgroup-fix
UNIT
  if ((changed)); then
    mh_step "$h: cgroup fix as ExecStartPre of lxd.service"
    lxc exec "$h" -- systemctl daemon-reload
  fi

  if ! lxd_installed "$h"; then
    mh_step "$h: installing ${MH_PACKAGES[*]} ($(wc -l <"$manifest") debs, dpkg -i)"
    lxc exec "$h" -- sh -c 'rm -rf /root/mh-debs && mkdir -p /root/mh-debs'
    local files=()
    mapfile -t files < <(while read -r spec; do
      n="${spec%%=*}" v="${spec#*=}"; compgen -G "$MH_DEBS/${n}_${v//:/%3a}_*.deb" | head -n1
    done <"$manifest")
    lxc file push --quiet "${files[@]}" "$h/root/mh-debs/"
    lxc exec "$h" --env DEBIAN_FRONTEND=noninteractive -- sh -c \
      'dpkg -i /root/mh-debs/*.deb >/root/mh-debs.log 2>&1' \
      || { lxc exec "$h" -- tail -n 30 /root/mh-debs.log >&2; mh_die "$h: dpkg -i failed"; }
    lxc exec "$h" -- rm -rf /root/mh-debs
    lxd_installed "$h" || mh_die "$h: packages not installed after dpkg -i"
  fi

  if ! timeout 30 lxc exec "$h" -- lxc info >/dev/null 2>&1; then
    mh_step "$h: starting lxd.service"
    lxc exec "$h" -- timeout "$MH_TIMEOUT" systemctl start lxd.service \
      || { lxc exec "$h" -- journalctl -u lxd.service -n 30 --no-pager >&2 || true; mh_die "$h: lxd.service did not start"; }
    lxc exec "$h" -- lxd waitready --timeout="$MH_TIMEOUT" || mh_die "$h: LXD not ready within ${MH_TIMEOUT}s"
  fi
  lxc exec "$h" -- mountpoint -q /sys/fs/cgroup/cpuacct \
    || mh_die "$h: /sys/fs/cgroup/cpuacct is not a mount (cgroup fix did not run?)"
}

# A standalone host: its own preseed, image, trust and certificate.
configure_host() {  # HOST ADDR
  local h="$1" addr="$2"
  if ! lxd_configured "$h" "$addr"; then
    mh_step "$h: lxd init --preseed (https $addr:$MH_PORT, dir pool, default + $MH_NESTED_PROFILE profiles)"
    preseed "$h" "$addr" | lxc exec "$h" -- lxd init --preseed
    lxd_configured "$h" "$addr" || mh_die "$h: LXD not configured after preseed"
  fi

  import_image "$h"
  trust_controller "$h"
  pin_certificate "$h" "$h" /var/lib/lxd/server.crt
}

# Imports the project image unless the host (or cluster) has this very one.
import_image() {  # HOST
  local h="$1" have_fp
  have_fp="$(lxc exec "$h" -- lxc image info "$VRRP_IMAGE" 2>/dev/null | awk '/^Fingerprint:/ {print $2}' || true)"
  if [[ "$have_fp" != "$outer_fp" ]]; then
    export_image
    mh_step "$h: importing $VRRP_IMAGE"
    [[ -z "$have_fp" ]] || lxc exec "$h" -- lxc image delete "$VRRP_IMAGE"
    local meta rootfs
    meta="$(compgen -G "$image_dir/meta-*" | head -n1 || true)"
    rootfs="$(find "$image_dir" -maxdepth 1 -type f ! -name 'meta-*' ! -name .complete | head -n1)"
    lxc exec "$h" -- sh -c 'rm -rf /root/mh-image && mkdir -p /root/mh-image'
    lxc file push --quiet ${meta:+"$meta"} "$rootfs" "$h/root/mh-image/"
    lxc exec "$h" -- sh -c "cd /root/mh-image && lxc image import ${meta:+'$(basename "$meta")'} '$(basename "$rootfs")' --alias '$VRRP_IMAGE' >/dev/null"
    lxc exec "$h" -- rm -rf /root/mh-image
    have_fp="$(lxc exec "$h" -- lxc image info "$VRRP_IMAGE" | awk '/^Fingerprint:/ {print $2}')"
    [[ "$have_fp" == "$outer_fp" ]] || mh_die "$h: imported image has fingerprint $have_fp, not $outer_fp"
  fi
}

trust_controller() {  # HOST
  local h="$1"
  if ! lxc exec "$h" -- lxc query "/1.0/certificates/$client_fp" >/dev/null 2>&1; then
    mh_step "$h: trusting the controller certificate ($client_fp)"
    lxc file push --quiet "$client_crt" "$h/root/vrrp-lxd-controller.crt"
    lxc exec "$h" -- lxc config trust add /root/vrrp-lxd-controller.crt --name vrrp-lxd-controller
    lxc exec "$h" -- rm -f /root/vrrp-lxd-controller.crt
  fi
}

# The certificate read over `lxc exec` (a channel we trust) is what we pin.
pin_certificate() {  # HOST NAME PATH-IN-HOST
  local h="$1" name="$2" crt="$MH_ETC/$2.server.crt" tmp
  tmp="$(mktemp)"
  lxc exec "$h" -- cat "$3" >"$tmp"
  if cmp -s "$tmp" "$crt"; then rm -f "$tmp"; else mv "$tmp" "$crt"; chmod 644 "$crt"; fi
  server_fp[$name]="$(mh_cert_fp "$crt")"
  server_spki[$name]="$(mh_cert_spki "$crt")"
}

# ---------------------------------------------------------------- the cluster (MH_CLUSTER=1)
member_of_cluster() {  # HOST: its LXD is a cluster member
  [[ "$(lxc exec "$1" -- lxc query /1.0/cluster 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin).get("enabled"))' 2>/dev/null)" == True ]]
}

cluster_size() {  # HOST: members that are online, as the cluster sees them
  lxc exec "$1" -- lxc query '/1.0/cluster/members?recursion=1' 2>/dev/null \
    | python3 -c 'import json,sys; print(sum(m["status"] == "Online" for m in json.load(sys.stdin)))'
}

# The first host bootstraps the cluster: the same preseed as a standalone host
# plus `cluster.enabled`. Enabling clustering replaces the server certificate
# with the cluster's, so the pin is taken only after this.
bootstrap_cluster() {  # HOST ADDR
  local h="$1" addr="$2"
  if ! member_of_cluster "$h"; then
    mh_step "$h: lxd init --preseed, bootstrapping the cluster (https $addr:$MH_PORT)"
    { preseed "$h" "$addr"
      printf 'cluster:\n  server_name: %s\n  enabled: true\n' "$h"
    } | lxc exec "$h" -- timeout "$MH_TIMEOUT" lxd init --preseed
    member_of_cluster "$h" || mh_die "$h: not clustered after the preseed"
  fi
  lxd_configured "$h" "$addr" || mh_die "$h: cluster bootstrapped but not configured"
}

# Any other host joins with a token from the first. A joining LXD must be
# empty: no preseed of its own, the pool's member-specific `source` given
# through member_config (empty: LXD's default directory for a `dir` pool).
join_cluster() {  # HOST ADDR FIRST
  local h="$1" addr="$2" first="$3" token
  member_of_cluster "$h" && return 0
  mh_step "$h: joining the cluster through $first"
  # A token left by an interrupted run would make `cluster add` refuse.
  lxc exec "$first" -- lxc cluster revoke-token "$h" >/dev/null 2>&1 || true
  token="$(lxc exec "$first" -- lxc cluster add "$h" --quiet 2>/dev/null | tail -n1)" \
    || mh_die "$first: no join token for $h"
  [[ -n "$token" ]] || mh_die "$first: empty join token for $h"
  cat <<YAML | lxc exec "$h" -- timeout "$MH_TIMEOUT" lxd init --preseed \
    || mh_die "$h: joining the cluster failed"
cluster:
  enabled: true
  server_name: $h
  server_address: $addr:$MH_PORT
  cluster_token: $token
  member_config:
  - entity: storage-pool
    name: default
    key: source
    value: ""
YAML
  member_of_cluster "$h" || mh_die "$h: not a cluster member after joining"
}

lxd_installed "${MH_HOSTS[0]}" && lxd_installed "${MH_HOSTS[-1]}" || fetch_debs
for i in "${!MH_HOSTS[@]}"; do
  setup_host "${MH_HOSTS[$i]}" "${MH_ADDRS[$i]}"
done
if [[ "$MH_CLUSTER" == 1 ]]; then
  first="${MH_HOSTS[0]}"
  bootstrap_cluster "$first" "${MH_ADDRS[0]}"
  for i in "${!MH_HOSTS[@]}"; do
    ((i == 0)) || join_cluster "${MH_HOSTS[$i]}" "${MH_ADDRS[$i]}" "$first"
  done
  size="$(cluster_size "$first")"
  [[ "$size" == "${#MH_HOSTS[@]}" ]] || mh_die "the cluster has $size online member(s), not ${#MH_HOSTS[@]}"
  # Cluster-wide from here on: the image (replicated to the members by LXD
  # itself, never from an image server), the controller's trust, and one
  # certificate that every member presents.
  import_image "$first"
  trust_controller "$first"
  pin_certificate "$first" "$MH_CLUSTER_NAME" /var/lib/lxd/cluster.crt
  for h in "${MH_HOSTS[@]}"; do
    server_fp[$h]="${server_fp[$MH_CLUSTER_NAME]}"
    server_spki[$h]="${server_spki[$MH_CLUSTER_NAME]}"
  done
else
  for i in "${!MH_HOSTS[@]}"; do
    configure_host "${MH_HOSTS[$i]}" "${MH_ADDRS[$i]}"
  done
fi

# ---------------------------------------------------------------- verify over the LAN
https_up() { curl -sk -o /dev/null --max-time 3 "https://$1:$MH_PORT/1.0"; }
for i in "${!MH_HOSTS[@]}"; do
  h="${MH_HOSTS[$i]}" addr="${MH_ADDRS[$i]}"
  route="$(ip route get "$addr")"
  grep -q " dev $MH_BRIDGE " <<<"$route" || mh_die "$addr is not routed via $MH_BRIDGE: $route"
  mh_wait 30 "$h: https://$addr:$MH_PORT answering" https_up "$addr"
  # The certificate on the wire must be the one read from the host...
  wire_fp="$(openssl s_client -connect "$addr:$MH_PORT" </dev/null 2>/dev/null | openssl x509 -outform DER | sha256sum | cut -d' ' -f1)"
  [[ "$wire_fp" == "${server_fp[$h]}" ]] || mh_die "$h: server presents $wire_fp, expected ${server_fp[$h]}"
  # ...and with the key pinned, the client certificate must be trusted.
  auth="$(curl -sS -k --pinnedpubkey "sha256//${server_spki[$h]}" --cert "$client_crt" --key "$client_key" \
    --max-time 10 "https://$addr:$MH_PORT/1.0" | python3 -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["auth"])')"
  [[ "$auth" == trusted ]] || mh_die "$h: GET https://$addr:$MH_PORT/1.0 says auth=$auth"
done

# ---------------------------------------------------------------- hosts.yml
hosts_yml="$MH_ETC/hosts.yml"
# One settings entry: an LXD host, or the cluster reached through a member.
# Its instances sit on macvlan, where no LXD lease can tell an address: the
# inventory reads their state at once (address_source: state).
host_entry() {  # name address [cluster]
  echo "  - name: $1"
  [[ -z "${3:-}" ]] || echo "    cluster: true"
  cat <<YAML
    url: https://$2:$MH_PORT
    server_cert_fingerprint: ${server_fp[$1]}
    server_cert: $MH_ETC/$1.server.crt
    client_cert: $client_crt
    client_key: $client_key
    project: default
    image: $VRRP_IMAGE
    profiles: [default, $MH_NESTED_PROFILE]
    network: $MH_NESTED_PROFILE
    address_source: state
YAML
}
{
  if [[ "$MH_CLUSTER" == 1 ]]; then
    # One entry: the cluster, reached through its first member; the members
    # (placement targets) are read from the cluster itself.
    echo "# Written by scripts/multihost/up.sh: the cluster test bed. Do not edit."
    echo "hosts:"
    host_entry "$MH_CLUSTER_NAME" "${MH_ADDRS[0]}" cluster
  else
    echo "# Written by scripts/multihost/up.sh: the two-host test bed. Do not edit."
    echo "hosts:"
    for i in "${!MH_HOSTS[@]}"; do
      host_entry "${MH_HOSTS[$i]}" "${MH_ADDRS[$i]}"
    done
  fi
  cat <<YAML
lan:
  bridge: $MH_BRIDGE
  address: $MH_BRIDGE_ADDR
  dhcp_range: $MH_DHCP_RANGE
YAML
} >"$hosts_yml.tmp"
if cmp -s "$hosts_yml.tmp" "$hosts_yml"; then rm -f "$hosts_yml.tmp"; else mv "$hosts_yml.tmp" "$hosts_yml"; fi
chmod 644 "$hosts_yml"

t_ready=$((SECONDS - t0))
mh_step "test bed ready in ${t_ready}s"
for i in "${!MH_HOSTS[@]}"; do
  h="${MH_HOSTS[$i]}"
  printf '  %-12s https://%s:%s  sha256 %s  auth=trusted\n' "$h" "${MH_ADDRS[$i]}" "$MH_PORT" "${server_fp[$h]}"
done
printf '  client cert  %s (%s)\n  hosts file   %s\n' "$client_crt" "$client_fp" "$hosts_yml"

if [[ "${MH_CHECK:-1}" != 0 ]]; then
  "$here/check.sh"
  mh_step "up.sh done in $((SECONDS - t0))s (ready ${t_ready}s, smoke check $((SECONDS - t0 - t_ready))s)"
fi
