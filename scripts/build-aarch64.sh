#!/usr/bin/env bash
# Cross-builds the module binaries and lxd_inventory for arm64 hosts into
# dist/aarch64/ (make build-aarch64), laid out as `make build` lays out dist/:
#   dist/aarch64/library/<m>, <m>.yml   dist/aarch64/bin/lxd_inventory
#
# rustup offers no aarch64 std here, so this uses Debian's own Rust 1.96
# (rustc-web, cargo-web) with the arm64 std from multiarch
# (libstd-rust-web-dev:arm64, which lands in /usr/lib/rustlib, the sysroot of
# /usr/bin/rustc). Debian has no Rust std for aarch64 musl, so the target is
# aarch64-unknown-linux-gnu, linked statically against glibc (+crt-static) by
# the cross gcc. qemu-user-static is installed too, for running the result on
# an x86_64 host (testbed/tests/aarch64.rs).
#
# Installs what is missing (apt-get update only then; needs root for that),
# builds with the workspace's release profile into its own target directory
# (AARCH64_TARGET_DIR, default target/aarch64-cross) so the x86_64 cache is
# left alone, and checks that every binary is a static aarch64 executable.
# Environment: VRRP_DIST (default dist/), AARCH64_BUILD_TIMEOUT (seconds,
# default 5400). Safe to run again: a warm build only relinks what changed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
triple=aarch64-unknown-linux-gnu
out="${VRRP_DIST:-$root/dist}/aarch64"
target_dir="${AARCH64_TARGET_DIR:-$root/target/aarch64-cross}"
build_timeout="${AARCH64_BUILD_TIMEOUT:-5400}"
modules=(lxd_instance lxd_cluster_member haproxy_backend keepalived_vrrp apache_site dns_zone resolver)
native="$(timeout 30 dpkg --print-architecture)"
# Multi-Arch: same packages are named with their architecture: without one,
# dpkg-query answers for every architecture installed.
debs=(rustc-web cargo-web "libstd-rust-web-dev:$native" libstd-rust-web-dev:arm64
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static file)
rustc=/usr/bin/rustc
cargo=/usr/bin/cargo

die() { echo "build-aarch64: $*" >&2; exit 1; }
say() { echo "build-aarch64: $*" >&2; }

installed() {
  # shellcheck disable=SC2016 # ${Status} is dpkg-query's, not the shell's
  [[ "$(timeout 30 dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

if ! timeout 30 dpkg --print-foreign-architectures | grep -qx arm64; then
  [[ $EUID -eq 0 ]] || die "the arm64 architecture is not enabled in dpkg: run as root once"
  say "enabling the arm64 architecture in dpkg (multiarch)"
  timeout 60 dpkg --add-architecture arm64
fi
missing=()
for d in "${debs[@]}"; do installed "$d" || missing+=("$d"); done
if ((${#missing[@]})); then
  [[ $EUID -eq 0 ]] || die "missing packages, run as root once: ${missing[*]}"
  say "installing ${missing[*]}"
  # Sources other than Debian's may be unreachable; what is needed comes from Debian.
  timeout 600 apt-get update -qq || say "apt-get update reported errors; trying the install anyway"
  DEBIAN_FRONTEND=noninteractive timeout 1800 apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
fi

# The arm64 std must be the one this rustc was built with; both come from the
# same source package and dpkg keeps Multi-Arch: same packages at one version.
libdir="$(timeout 30 "$rustc" --print target-libdir --target "$triple")"
compgen -G "$libdir/libstd-*.rlib" >/dev/null \
  || die "no Rust std for $triple in $libdir (libstd-rust-web-dev:arm64)"

started=$SECONDS
packages=()
for m in "${modules[@]}" lxd_inventory; do packages+=(-p "$m"); done
say "building ${modules[*]} lxd_inventory for $triple with $(timeout 30 "$rustc" -V)"
# rustup's proxies come first on PATH: name Debian's tools explicitly so a
# rustup toolchain is never asked for a target it does not have. RUSTFLAGS
# from the caller would replace the per-target flags below.
env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u RUSTUP_TOOLCHAIN \
  RUSTC="$rustc" RUSTDOC=/usr/bin/rustdoc CARGO="$cargo" \
  CARGO_TARGET_DIR="$target_dir" \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
  CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
  AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
  timeout "$build_timeout" nice -n 19 "$cargo" build --release --locked \
    --target "$triple" "${packages[@]}" --bins
release="$target_dir/$triple/release"

mkdir -p "$out/library" "$out/bin"
check() {
  local desc
  desc="$(timeout 30 file -b "$1")"
  [[ "$desc" == *"ARM aarch64"* && "$desc" == *"statically linked"* ]] \
    || die "$1 is not a static aarch64 executable: $desc"
}
for m in "${modules[@]}"; do
  check "$release/$m"
  install -m 0755 "$release/$m" "$out/library/$m"
  if [[ -f "$root/modules/$m/$m.yml" ]]; then install -m 0644 "$root/modules/$m/$m.yml" "$out/library/$m.yml"; fi
done
check "$release/lxd_inventory"
install -m 0755 "$release/lxd_inventory" "$out/bin/lxd_inventory"
say "built in $((SECONDS - started)) s"
for b in "${modules[@]/#/library/}" bin/lxd_inventory; do
  printf '    %-20s %8d bytes\n' "${b#*/}" "$(stat -c %s "$out/$b")"
done
