#!/bin/sh
# Pushed into each test-bed host as /usr/local/sbin/vrrp-cgroup-fix and run as an
# ExecStartPre of lxd.service (see scripts/multihost/up.sh).
#
# On machines that mount cpu and cpuacct as separate cgroup v1 hierarchies, an LXD
# container gets neither under /sys/fs/cgroup, and a nested LXD then fails with
# "Failed to open 6/cpuacct: Not a directory". When /sys/fs/cgroup/cpuacct is not a
# mount, build a full tree (one v1 mount per hierarchy listed in /proc/self/cgroup,
# name= ones as none,name=..., plus cgroup2 as "unified") on a private tmpfs staging
# mount and move it onto /sys/fs/cgroup in one step. (Remounting in place from an
# early boot unit raced with systemd: units failed with 219/CGROUP.)
# A host with plain cgroup v2 (only "0::/" in /proc/self/cgroup) needs nothing.
set -eu

grep -q '^[1-9][0-9]*:' /proc/self/cgroup || exit 0        # pure cgroup v2
mountpoint -q /sys/fs/cgroup/cpuacct && exit 0             # already fine

stage=/run/vrrp-cgroup-stage
mkdir -p "$stage"
mountpoint -q "$stage" || mount -t tmpfs -o mode=0700,size=1m vrrp-cgroup-stage "$stage"
mount --make-private "$stage"
tree="$stage/tree"
mkdir -p "$tree"
mountpoint -q "$tree" || mount -t tmpfs -o mode=0755 cgroup "$tree"

while IFS=: read -r id ctrls _path; do
  case "$ctrls" in
    "")
      [ "$id" = 0 ] || continue
      mkdir -p "$tree/unified"
      mount -t cgroup2 -o nsdelegate cgroup2 "$tree/unified" 2>/dev/null \
        || mount -t cgroup2 cgroup2 "$tree/unified"
      ;;
    name=*)
      dir="${ctrls#name=}"
      mkdir -p "$tree/$dir"
      mount -t cgroup -o "none,$ctrls" cgroup "$tree/$dir"
      ;;
    *)
      mkdir -p "$tree/$ctrls"
      mount -t cgroup -o "$ctrls" cgroup "$tree/$ctrls"
      # Co-mounted controllers ("cpu,cpuacct") also get one link per controller.
      case "$ctrls" in
        *,*)
          for c in $(echo "$ctrls" | tr ',' ' '); do
            [ -e "$tree/$c" ] || ln -s "$ctrls" "$tree/$c"
          done
          ;;
      esac
      ;;
  esac
done </proc/self/cgroup

mount --move "$tree" /sys/fs/cgroup
umount "$stage"
rmdir "$stage" 2>/dev/null || true
mountpoint -q /sys/fs/cgroup/cpuacct || { echo "vrrp-cgroup-fix: cpuacct still missing" >&2; exit 1; }
echo "vrrp-cgroup-fix: rebuilt /sys/fs/cgroup"
