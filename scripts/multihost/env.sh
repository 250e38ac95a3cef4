# Settings for the two-host test bed (scripts/multihost/*.sh); every value can be
# overridden from the environment. Sourced, not run.
# shellcheck shell=bash
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/env.sh"

# MH_CLUSTER=1: the cluster test bed instead, three hosts joined as one LXD
# cluster (`make cluster-up`), on a LAN of its own so that both beds can be up
# at once.
MH_CLUSTER="${MH_CLUSTER:-0}"
if [[ "$MH_CLUSTER" == 1 ]]; then
  MH_BRIDGE="${MH_BRIDGE:-vrrpcl0}"
  MH_BRIDGE_ADDR="${MH_BRIDGE_ADDR:-10.233.0.1/24}"
  MH_DHCP_RANGE="${MH_DHCP_RANGE:-10.233.0.100-10.233.0.199}"
  MH_POOL="${MH_POOL:-vrrp-cl}"
  MH_PROFILE="${MH_PROFILE:-vrrp-cl-host}"
  MH_HOSTS="${MH_HOSTS:-cl-host-1 cl-host-2 cl-host-3}"
  MH_ADDRS="${MH_ADDRS:-10.233.0.11 10.233.0.12 10.233.0.13}"
  MH_ETC="${MH_ETC:-/etc/vrrp-lxd/cluster}"
  # The name the topology settings give the cluster (its one hosts.yml entry).
  MH_CLUSTER_NAME="${MH_CLUSTER_NAME:-cl}"
fi
MH_BRIDGE="${MH_BRIDGE:-vrrplan0}"                 # the LAN the two hosts share
MH_BRIDGE_ADDR="${MH_BRIDGE_ADDR:-10.232.0.1/24}"
MH_DHCP_RANGE="${MH_DHCP_RANGE:-10.232.0.100-10.232.0.199}"   # nested instances get these
MH_POOL="${MH_POOL:-vrrp-mh}"                      # outer pool for the host containers
MH_PROFILE="${MH_PROFILE:-vrrp-mh-host}"
MH_HOSTS=(${MH_HOSTS:-vrrp-host-1 vrrp-host-2})
MH_ADDRS=(${MH_ADDRS:-10.232.0.11 10.232.0.12})
MH_NESTED_PROFILE="${MH_NESTED_PROFILE:-macvlan}" # profile inside each host (nictype macvlan)
MH_PORT="${MH_PORT:-8443}"
MH_ETC="${MH_ETC:-/etc/vrrp-lxd/multihost}"        # client cert/key, server certs, hosts.yml
MH_CACHE="${MH_CACHE:-$VRRP_IMAGE_CACHE/multihost}"  # debs and the exported image
MH_DEBS="${MH_DEBS:-$VRRP_IMAGE_CACHE/multihost-debs}"
MH_PACKAGES=(${MH_PACKAGES:-lxd lxd-client dnsmasq-base})
MH_TIMEOUT="${MH_TIMEOUT:-120}"                    # upper bound for any single wait, seconds

mh_step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
mh_die() { printf '\033[31mERROR: %s\033[0m\n' "$*" >&2; exit 1; }

# mh_wait SECONDS WHAT CMD...: runs CMD every second until it succeeds; dies after SECONDS.
mh_wait() {
  local limit="$1" what="$2"; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || mh_die "timed out after ${limit}s waiting for: $what"
    sleep 1
  done
}

# The DER fingerprint LXD uses for certificates (sha256, lower-case hex).
mh_cert_fp() { openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1; }
# The SPKI pin curl's --pinnedpubkey takes (base64 sha256 of the public key).
mh_cert_spki() {
  openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER \
    | openssl dgst -sha256 -binary | base64
}
