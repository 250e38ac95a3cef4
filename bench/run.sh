#!/usr/bin/env bash
# `make bench`: every benchmark in one run on the local LXD, each figure beside its
# baseline, BENCH_REPS repetitions (default 5), a min/median/max table on stdout and
# in bench/results/<date>.md, the raw numbers in bench/results/<date>.json, and a
# chart (bench/results/<date>.png, copied to docs/performance.png).
#
# Environment:
#   BENCH_REPS=5          repetitions of each figure
#   BENCH_ONLY=a,b        run only these sections: failover, growth, dns, tls, inventory, tasks, hostloss, cluster,
#                         soak, scale, sizes (hostloss needs the two-host test bed: make hosts-up; cluster raises
#                         the cluster test bed when it is not up, and then takes it down unless KEEP=1)
#   BENCH_CLUSTER_MODE=migrate   vrrp_evacuate_mode of the cluster section's evacuation (stop, migrate)
#   BENCH_CLUSTER_PARTS=inventory,evacuation   what the cluster section measures
#   BENCH_HOSTLOSS_VARIANTS=default,fast   HAProxy health checks the host loss is measured with
#   BENCH_INV_RUNS        timed runs per inventory command (default 3 x BENCH_REPS)
#   BENCH_TASKS=20        tasks per host in the per-task benchmark
#   BENCH_SOAK_MIN=2.5    minutes per soak variant (make soak: 10); BENCH_SOAK_* in bench/soak.py
#   BENCH_SCALE_SIZES=2,8,16,30  web counts of the scale section (2 LBs; BENCH_SCALE_LBS=3 at the largest)
#   KEEP=1                keep the instances made here (for debugging)
# Every instance made here is named bench-* and deleted at the end, also on failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
source "$root/scripts/env.sh"

for f in dist/bin/vrrp-probe dist/bin/lxd_inventory dist/library/keepalived_vrrp \
  dist/library/haproxy_backend dist/library/apache_site dist/library/lxd_instance; do
  if [[ ! -x "$root/$f" ]]; then
    echo "bench: $f is missing; run \`make build\` (or \`make bench\`, which builds first)" >&2
    exit 1
  fi
done
if ! lxc info >/dev/null 2>&1; then
  echo "bench: LXD does not answer (\`lxc info\` failed); run \`make up\` first" >&2
  exit 1
fi
if ! lxc image show "$VRRP_IMAGE" >/dev/null 2>&1; then
  echo "bench: image $VRRP_IMAGE is missing; run \`make setup\`" >&2
  exit 1
fi

# Every systemd container takes inotify instances from the host's per-user pool; at
# the kernel's default (128) a host running a few dozen containers cannot boot more
# ("Failed to allocate manager object: Too many open files" in the console log).
inotify="$(sysctl -n fs.inotify.max_user_instances 2>/dev/null || echo 0)"
if ((inotify < 1024)); then
  echo "bench: warning: fs.inotify.max_user_instances is $inotify; with many containers running," >&2
  echo "       new ones may fail to boot. Raise it: sysctl -w fs.inotify.max_user_instances=1024" >&2
fi

cd "$root"
exec "$VRRP_VENV/bin/python" "$here/run.py" "$@"
