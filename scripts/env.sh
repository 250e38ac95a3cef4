# Shared settings for the host scripts; every value can be overridden from the environment.
VRRP_ROOT="${VRRP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
VRRP_VENV="${VRRP_VENV:-/opt/vrrp-lxd/venv}"
# Storage (scripts/setup-host.sh): where btrfs works, a btrfs pool $VRRP_POOL on a
# loop file of $VRRP_POOL_SIZE that LXD makes (sparse: it takes what the instances
# use); elsewhere, or with VRRP_POOL_DRIVER=dir, the `dir` pool $VRRP_POOL_DIR, which
# is also the pool earlier set-ups made: deleted once nothing uses it.
VRRP_POOL="${VRRP_POOL:-vrrp-lxd-cow}"
VRRP_POOL_SIZE="${VRRP_POOL_SIZE:-30GiB}"
VRRP_POOL_DIR="${VRRP_POOL_DIR:-vrrp-lxd}"
VRRP_POOL_DRIVER="${VRRP_POOL_DRIVER:-auto}"   # auto (btrfs where it works, else dir), btrfs, dir
VRRP_BRIDGE="${VRRP_BRIDGE:-vrrpbr0}"
VRRP_BRIDGE_ADDR="${VRRP_BRIDGE_ADDR:-10.231.0.1/24}"
VRRP_SUBNET="${VRRP_SUBNET:-10.231.0.0/24}"
VRRP_DHCP_RANGE="${VRRP_DHCP_RANGE:-10.231.0.100-10.231.0.199}"
VRRP_PROFILE="${VRRP_PROFILE:-vrrp-lxd}"
VRRP_IMAGE="${VRRP_IMAGE:-vrrp-lxd/bookworm}"
VRRP_IMAGE_CACHE="${VRRP_IMAGE_CACHE:-/var/cache/vrrp-lxd}"
export VRRP_ROOT VRRP_VENV VRRP_POOL VRRP_POOL_SIZE VRRP_POOL_DIR VRRP_POOL_DRIVER \
  VRRP_BRIDGE VRRP_BRIDGE_ADDR VRRP_SUBNET VRRP_DHCP_RANGE VRRP_PROFILE VRRP_IMAGE VRRP_IMAGE_CACHE
# Incus, LXD's community fork (scripts/setup-incus.sh): BACKEND=incus (or
# VRRP_BACKEND=incus) makes `make up` use it instead of LXD. It runs beside LXD
# on its own pool, bridge and subnet, so both can serve one host. The binaries
# and the connection plugin read VRRP_BACKEND to pick the socket.
VRRP_BACKEND="${VRRP_BACKEND:-${BACKEND:-lxd}}"
VRRP_INCUS_POOL="${VRRP_INCUS_POOL:-vrrp-incus}"
VRRP_INCUS_BRIDGE="${VRRP_INCUS_BRIDGE:-vrrpin0}"
VRRP_INCUS_BRIDGE_ADDR="${VRRP_INCUS_BRIDGE_ADDR:-10.234.0.1/24}"
VRRP_INCUS_SUBNET="${VRRP_INCUS_SUBNET:-10.234.0.0/24}"
VRRP_INCUS_DHCP_RANGE="${VRRP_INCUS_DHCP_RANGE:-10.234.0.100-10.234.0.199}"
export VRRP_BACKEND VRRP_INCUS_POOL VRRP_INCUS_BRIDGE VRRP_INCUS_BRIDGE_ADDR VRRP_INCUS_SUBNET \
  VRRP_INCUS_DHCP_RANGE
