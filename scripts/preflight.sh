#!/usr/bin/env bash
# Checks this host before `make setup`, `make up` and `make test` change anything,
# and says in one line per problem what is wrong and what to do.
#
#   preflight.sh host [up|test]  root, the OS, the Rust toolchain, free disk for
#                                what that goal builds (default up)
#   preflight.sh lxd [up|test]   the LXD daemon answers on its socket (after set-up)
#
# Every check runs; each problem is one line on stderr starting "preflight:";
# the exit code is 1 when there was any. Takes well under a second.
#
# Environment: the settings of scripts/env.sh, CARGO_TARGET_DIR, CARGO_HOME,
# LXD_DIR; VRRP_LXD_TIMEOUT (seconds `lxc info` may take, default 10);
# VRRP_OS_RELEASE (default /etc/os-release).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
source "$here/env.sh"

problems=0
notes=()
fail() { printf 'preflight: %s\n' "$*" >&2; problems=$((problems + 1)); }
warn() { printf 'preflight: warning: %s\n' "$*" >&2; }

musl=x86_64-unknown-linux-musl

# --- the OS ------------------------------------------------------------------
# Debian 12 and 13 are what the set-up is written and tested for (apt, the `lxd`
# package, which Debian has carried since 12). Another apt-based system gets a
# warning and a try: its package names are mostly the same. Without apt, or on
# a Debian without an lxd package, the set-up cannot work: refuse.
os_id="" os_version="" os_name=""
read_os() {
  local f="${VRRP_OS_RELEASE:-/etc/os-release}"
  [[ -r "$f" ]] || return 0
  mapfile -t _os < <(
    # shellcheck disable=SC1090
    . "$f"
    printf '%s\n' "${ID:-}" "${VERSION_ID:-}" "${PRETTY_NAME:-${NAME:-}}"
  )
  os_id="${_os[0]:-}" os_version="${_os[1]:-}" os_name="${_os[2]:-}"
}

check_os() {
  read_os
  local name="${os_name:-this system (no /etc/os-release)}"
  if [[ "$os_id" == debian && "$os_version" =~ ^[0-9]+$ ]]; then
    if ((os_version == 12 || os_version == 13)); then
      notes+=("$name")
      return 0
    elif ((os_version < 12)); then
      fail "$name has no lxd package (Debian has one from 12 on): use Debian 12 or 13"
      return 0
    fi
  fi
  if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    fail "$name: the set-up installs its packages (lxd, debootstrap, musl-tools, python3-venv) with apt-get, which is missing: use Debian 12 or 13"
  else
    warn "$name is not Debian 12 or 13, the systems this is tested on; carrying on with apt (package lxd)"
  fi
}

# --- root --------------------------------------------------------------------
check_root() {
  if (($(id -u) != 0)); then
    fail "run as root (sudo make ${goal:-up}): the set-up installs packages, starts LXD and writes $VRRP_VENV, $VRRP_IMAGE_CACHE and /etc/sysctl.d"
  fi
}

# --- the Rust toolchain ---------------------------------------------------------
# The build needs rustc >= the workspace's rust-version and the musl target's
# standard library, which only rustup provides (Debian's rustc has none, and
# Debian 12's is 1.63). rustup downloads toolchains: it needs the internet.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
how_to_get_rustup() {
  local curl="curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y"
  local offline="needs the internet; offline, copy ~/.rustup and ~/.cargo from a machine that has them"
  if [[ "$os_id" == debian && "$os_version" =~ ^[0-9]+$ ]] && ((os_version >= 13)); then
    echo "apt-get install rustup && rustup default stable ($offline)"
  elif [[ "$os_id" == debian && "$os_version" == 12 ]]; then
    echo "Debian 12 has no rustup package and its rustc (1.63) is too old and lacks the musl target, so: $curl ($offline)"
  else
    echo "install rustup: $curl ($offline)"
  fi
}

check_rust() {
  local want have rustc rustup sysroot
  want="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$VRRP_ROOT/Cargo.toml" | head -1)"
  want="${want:-1.80}"
  PATH="$PATH:$cargo_home/bin"
  rustc="$(command -v rustc || true)"
  rustup="$(command -v rustup || true)"
  if [[ -z "$rustc" && -z "$rustup" ]]; then
    fail "no Rust toolchain (neither rustc nor rustup on PATH or in $cargo_home/bin); the build needs Rust >= $want with the $musl target: $(how_to_get_rustup)"
    return 0
  fi
  if ! have="$(rustc --version 2>&1)"; then
    if [[ -n "$rustup" ]]; then
      fail "rustup has no default toolchain ($(head -1 <<<"$have")): rustup default stable (downloads from the internet)"
    else
      fail "$rustc --version failed: $(head -1 <<<"$have")"
    fi
    return 0
  fi
  have="$(awk '{print $2}' <<<"$have")"
  have="${have%%-*}"
  if [[ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1)" != "$want" ]]; then
    if [[ -n "$rustup" ]]; then
      fail "Rust $have is older than the $want this workspace needs (rust-version in Cargo.toml): rustup update stable"
    else
      fail "Rust $have ($rustc) is older than the $want this workspace needs (rust-version in Cargo.toml), and there is no rustup: $(how_to_get_rustup)"
    fi
    return 0
  fi
  sysroot="$(rustc --print sysroot 2>/dev/null)"
  if [[ -z "$rustup" && ! -d "$sysroot/lib/rustlib/$musl/lib" ]]; then
    fail "Rust $have ($rustc) has no $musl standard library and there is no rustup to add it: $(how_to_get_rustup)"
  else
    notes+=("Rust $have")
  fi
}

# --- free disk -----------------------------------------------------------------
# What the set-up, the build and the tests write, measured on the machine this
# was built on (MiB): Ansible venv 758; crates download (~/.cargo/registry) 272;
# musl release build (target/x86_64-unknown-linux-musl) 301; target/debug after
# `make test` 5.7 GiB; the base image 136 in $VRRP_IMAGE_CACHE and 135 in LXD;
# one instance 400 on the `dir` pool (2 + 2 up: 1.6 GiB; `make test` has up to
# ~9 at once, and the two nested LXD hosts). Each figure below is rounded up and
# counted only when what it is for is not there yet.
declare -A fs_need=() fs_what=()
existing() {
  local p="$1"
  while [[ ! -e "$p" && "$p" != / ]]; do p="$(dirname "$p")"; done
  echo "$p"
}
gib() { awk -v m="$1" 'BEGIN { if (m < 1024) printf "%d MiB", m; else printf "%.1f GiB", m / 1024 }'; }
need() { # MiB PATH WHAT
  local fs
  fs="$(df -P -- "$(existing "$2")" 2>/dev/null | awk 'NR == 2 { print $6 }')"
  [[ -n "$fs" ]] || return 0
  fs_need[$fs]=$((${fs_need[$fs]:-0} + $1))
  fs_what[$fs]+="${fs_what[$fs]:+, }$3 $(gib "$1")"
}

lxd_dir() {
  if [[ -n "${LXD_DIR:-}" ]]; then
    echo "$LXD_DIR"
  elif [[ -d /var/snap/lxd/common/lxd && ! -d /var/lib/lxd ]]; then
    echo /var/snap/lxd/common/lxd
  else
    echo /var/lib/lxd
  fi
}

check_disk() {
  local target="${CARGO_TARGET_DIR:-$VRRP_ROOT/target}" fs avail
  dpkg-query -W -f='${Status}' lxd 2>/dev/null | grep -q "ok installed" ||
    need 500 /var/cache/apt "packages"
  [[ -x "$VRRP_VENV/bin/ansible-playbook" ]] || need 1000 "$VRRP_VENV" "Ansible venv"
  [[ -d "$cargo_home/registry" ]] || need 400 "$cargo_home" "crates"
  [[ -d "$target/$musl/release" ]] || need 600 "$target" "release build"
  if [[ "$goal" == test && ! -d "$target/debug" ]]; then
    need 6000 "$target" "test build"
  fi
  need 500 "$target" "rebuilds"
  need 300 "$VRRP_IMAGE_CACHE" "image build"
  if [[ "$goal" == test ]]; then
    need 5000 "$(lxd_dir)" "LXD image and test instances"
  else
    need 2000 "$(lxd_dir)" "LXD image and 4 instances"
  fi
  for fs in "${!fs_need[@]}"; do
    avail="$(df -Pk -- "$fs" | awk 'NR == 2 { print int($4 / 1024) }')"
    if ((avail < fs_need[$fs])); then
      fail "$(gib "$avail") free on $fs, $(gib "${fs_need[$fs]}") needed for make $goal (${fs_what[$fs]}): free some space, or move them (VRRP_VENV, VRRP_IMAGE_CACHE, CARGO_TARGET_DIR; scripts/env.sh)"
    else
      notes+=("$(gib "$avail") free on $fs ($(gib "${fs_need[$fs]}") needed)")
    fi
  done
}

# --- LXD -------------------------------------------------------------------------
# `lxc info` bounded by a short timeout: a stopped LXD fails at once, a hung one
# would otherwise hold the run.
check_lxd() {
  local t="${VRRP_LXD_TIMEOUT:-10}" socket err rc
  socket="${LXD_SOCKET:-$(lxd_dir)/unix.socket}"
  if ! command -v lxc >/dev/null; then
    fail "lxc is not installed: run make setup (it installs LXD)"
    return 0
  fi
  err="$(timeout -k 2 "$t" lxc info 2>&1 >/dev/null)"
  rc=$?
  if ((rc == 0)); then
    notes+=("LXD answers on $socket")
    return 0
  elif ((rc == 124 || rc == 137)); then
    fail "LXD did not answer on $socket within $t s: it is hung; systemctl restart lxd (journalctl -u lxd says why)"
  elif [[ ! -S "$socket" ]]; then
    fail "LXD is not running (no socket at $socket): systemctl start lxd, or run make setup"
  elif [[ "$err" == *"permission denied"* ]]; then
    fail "no permission to use LXD's socket $socket: run as root (sudo make ${goal:-up})"
  else
    fail "LXD did not answer on $socket: $(grep -m1 . <<<"$err"); systemctl status lxd"
  fi
}

# Incus (BACKEND=incus): the same check against its socket.
check_incus() {
  local t="${VRRP_LXD_TIMEOUT:-10}" socket="${INCUS_DIR:-/var/lib/incus}/unix.socket" err rc
  if ! command -v incus >/dev/null; then
    fail "incus is not installed: run BACKEND=incus make setup (it installs Incus from bookworm-backports)"
    return 0
  fi
  err="$(timeout -k 2 "$t" incus info 2>&1 >/dev/null)"
  rc=$?
  if ((rc == 0)); then
    notes+=("Incus answers on $socket")
  elif ((rc == 124 || rc == 137)); then
    fail "Incus did not answer on $socket within $t s: it is hung; restart incusd"
  else
    fail "Incus did not answer on $socket: $(grep -m1 . <<<"$err"); run BACKEND=incus make setup"
  fi
}

phase="${1:-host}"
goal="${2:-up}"
case "$phase" in
  host)
    case "$goal" in up | test) ;; *) echo "usage: $0 host|lxd [up|test]" >&2; exit 2 ;; esac
    check_root
    check_os
    check_rust
    check_disk
    ;;
  lxd)
    if [[ "${VRRP_BACKEND:-${BACKEND:-lxd}}" == incus ]]; then check_incus; else check_lxd; fi
    ;;
  *)
    echo "usage: $0 host|lxd [up|test]" >&2
    exit 2
    ;;
esac
if ((problems == 0)); then
  summary=""
  for n in "${notes[@]}"; do summary+="${summary:+, }$n"; done
  printf '\033[1m==> preflight: %s\033[0m\n' "${summary:-ok}"
  exit 0
fi
exit 1
