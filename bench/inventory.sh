#!/usr/bin/env bash
# Inventory benchmark (not a test): lists N instances (default 50, tiny busybox
# image) several ways in one run and prints min/median/max:
#   the raw requests with curl (`GET /1.0/instances?recursion=2`, which makes
#   LXD read every instance's state; `recursion=1` and the bridge's leases, what
#   lxd_inventory asks by default), `lxd_inventory --list` (leases, and with
#   address_source=state: one recursion=2), `ansible-inventory -i lxd_inventory
#   --list`, and `ansible-inventory` with the community.general.lxd plugin; plus
#   Ansible's own floor (an empty inventory).
# The instances live in their own LXD project (shares the default project's
# images, profiles and networks) so other instances on the host do not change
# the count; it is deleted at the end.
# Timing: interleaved rounds (every command once per round, shuffled), so a
# change of load on a shared machine hits all of them alike.
# JSON goes to bench/results/inventory.json.
#
# Environment: BENCH_INV_COUNT (50), BENCH_INV_RUNS (15 rounds), BENCH_INV_PROJECT
# (bench-inv), BENCH_INV_SOCKET (/var/lib/lxd/unix.socket), KEEP=1 keeps the
# instances, LXD_INVENTORY_BIN (default dist/bin/lxd_inventory, else built).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
source "$root/scripts/env.sh"

count="${BENCH_INV_COUNT:-50}"
runs="${BENCH_INV_RUNS:-15}"
project="${BENCH_INV_PROJECT:-bench-inv}"
socket="${BENCH_INV_SOCKET:-/var/lib/lxd/unix.socket}"
image="${VRRP_TINY_IMAGE:-vrrp-lxd/tiny}"
venv_bin="$VRRP_VENV/bin"
out_json="$root/bench/results/inventory.json"

for tool in jq curl bc; do
  if ! command -v "$tool" >/dev/null; then
    echo "==> apt-get install $tool"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$tool" >/dev/null
  fi
done

bin="${LXD_INVENTORY_BIN:-$root/dist/bin/lxd_inventory}"
if [[ ! -x "$bin" ]]; then
  echo "==> building lxd_inventory (release, musl)"
  (cd "$root" && cargo build --quiet --release --target x86_64-unknown-linux-musl -p lxd_inventory)
  bin="$root/target/x86_64-unknown-linux-musl/release/lxd_inventory"
fi

# One run at a time on this host: a second run would fight over the same
# instance names (and skew the timing); it waits for the first.
lock="${BENCH_INV_LOCK:-/run/lock/vrrp-lxd-bench-inventory.lock}"
exec 9>"$lock"
if ! flock -n 9; then
  echo "==> another inventory benchmark is running; waiting for it (lock $lock)"
  flock -w "${BENCH_INV_LOCK_WAIT:-1800}" 9 || { echo "gave up waiting for $lock" >&2; exit 1; }
fi

"$here/inventory-tiny-image.sh" "$image"

work="$(mktemp -d)"
created_project=0
names=()
cleanup() {
  local rc=$?
  if [[ "${KEEP:-}" == 1 ]]; then
    echo "KEEP=1: leaving ${#names[@]} instances in project $project"
  else
    if ((${#names[@]})); then
      echo "==> deleting ${#names[@]} instances"
      lxc delete -f --project "$project" "${names[@]}" >/dev/null 2>&1 || true
    fi
    if ((created_project)); then
      lxc project delete "$project" >/dev/null 2>&1 || echo "warning: project $project not deleted" >&2
    fi
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! lxc project show "$project" >/dev/null 2>&1; then
  lxc project create "$project" -c features.images=false -c features.profiles=false \
    -c features.storage.volumes=false -c features.networks=false >/dev/null
  created_project=1
elif [[ "$project" == bench-* ]]; then
  created_project=1 # left by a run that was killed: ours to remove
fi

# Holding the lock, any bench-inv-* already in the project is a leftover of a
# run that was killed: remove it so the count is exact.
stale=($(lxc list --project "$project" --format csv -c n | grep '^bench-inv-' || true))
if ((${#stale[@]})); then
  echo "==> deleting ${#stale[@]} leftover instances of an earlier run"
  lxc delete -f --project "$project" "${stale[@]}" >/dev/null
fi
for i in $(seq -w 1 "$count"); do names+=("bench-inv-$i"); done
echo "==> launching $count instances of $image in project $project"
t0=$(date +%s.%N)
printf '%s\n' "${names[@]}" |
  xargs -P 4 -I{} lxc launch "$image" {} --project "$project" -p "$VRRP_PROFILE" -q
api="http://lxd/1.0/instances?recursion=2&project=$project"
addressed() {
  curl -s --unix-socket "$socket" "$api" | jq '[.metadata[]
    | select(.name | startswith("bench-inv-"))
    | select(any(.state.network.eth0.addresses[]?; .family == "inet" and .scope == "global"))]
    | length'
}
for _ in $(seq 1 180); do
  n="$(addressed)"
  [[ "$n" -ge "$count" ]] && break
  sleep 1
done
n="$(addressed)"
if [[ "$n" -lt "$count" ]]; then
  echo "only $n of $count instances got a DHCP IPv4 within 180 s" >&2
  exit 1
fi
printf '==> %s instances up with IPv4 in %.1f s\n' "$count" "$(echo "$(date +%s.%N) - $t0" | bc)"

# Same Ansible settings for both inventories; run outside the project's
# ansible.cfg (which enables the script plugin only).
cat >"$work/ansible.cfg" <<CFG
[defaults]
host_key_checking = False
[inventory]
enable_plugins = community.general.lxd, ansible.builtin.script, ansible.builtin.yaml
CFG
cat >"$work/bench_lxd.yml" <<YML
plugin: community.general.lxd
url: unix:$socket
project: $project
YML
printf 'all:\n  hosts: {}\n' >"$work/empty.yml"
export ANSIBLE_CONFIG="$work/ansible.cfg" LXD_INVENTORY_PROJECT="$project" \
  LXD_INVENTORY_URL="unix:$socket" PATH="$venv_bin:$PATH" \
  BENCH_SOCKET="$socket" BENCH_BIN="$bin" BENCH_WORK="$work" BENCH_BRIDGE="$VRRP_BRIDGE"
unset LXD_INVENTORY_CONFIG
cd "$work"

# Sanity: every instance with its address, both ways, before timing anything;
# from the leases and from the state the same addresses.
ours="$("$bin" --list | jq '[._meta.hostvars[] | select(.ansible_host)] | length')"
"$bin" --list >"$work/leases.json"
LXD_INVENTORY_ADDRESS_SOURCE=state "$bin" --list >"$work/state.json"
if ! jq -e -n --slurpfile a "$work/leases.json" --slurpfile b "$work/state.json" \
  '($a[0]._meta.hostvars | map_values(.ansible_host)) == ($b[0]._meta.hostvars | map_values(.ansible_host))' >/dev/null; then
  echo "lxd_inventory: the addresses from the leases and from the state differ" >&2
  exit 1
fi
# How many instances the bridge's leases cover (the MAC and the name of the
# instance): lxd_inventory reads the state of the others, one request each.
leased="$(jq -n --slurpfile i <(curl -s --unix-socket "$socket" "http://lxd/1.0/instances?recursion=1&project=$project") \
  --slurpfile l <(curl -s --unix-socket "$socket" "http://lxd/1.0/networks/$VRRP_BRIDGE/leases?project=$project") \
  '[$i[0].metadata[] | . as $x | select(any($l[0].metadata[];
     .hostname == $x.name and (.hwaddr | ascii_downcase) == ($x.config["volatile.eth0.hwaddr"] // "" | ascii_downcase)))]
   | length')"
echo "==> the leases of $VRRP_BRIDGE give $leased of the $count addresses; lxd_inventory reads the state of the other $((count - leased))"
theirs="$(ansible-inventory -i bench_lxd.yml --list 2>/dev/null |
  jq '[._meta.hostvars[] | select(.ansible_host)] | length')"
e2e="$(ansible-inventory -i "$bin" --list 2>/dev/null | jq '[._meta.hostvars[] | select(.ansible_host)] | length')"
bytes="$(curl -s --unix-socket "$socket" "$api" | wc -c)"
echo "==> hosts with ansible_host: lxd_inventory $ours, via ansible-inventory $e2e, community.general.lxd $theirs; API answer $bytes bytes"
if [[ "$ours" -ne "$count" || "$e2e" -ne "$count" || "$theirs" -ne "$count" ]]; then
  echo "host counts disagree: expected $count everywhere" >&2
  exit 1
fi

echo "==> timing: $runs rounds after 2 warm-up rounds; each round runs every command once, in shuffled order"
mkdir -p "$(dirname "$out_json")"
/usr/bin/python3 - "$work/inventory.json" "$count" "$bytes" "$runs" "$project" <<'PY'
import datetime, json, os, platform, random, statistics, subprocess, sys, time

dst, count, size, runs, project = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
env = os.environ
socket, binary, work = env["BENCH_SOCKET"], env["BENCH_BIN"], env["BENCH_WORK"]
api = f"http://lxd/1.0/instances?recursion=2&project={project}"
raw = lambda path: ["curl", "-sf", "--unix-socket", socket, "-o", "/dev/null", f"http://lxd{path}"]
state = {"LXD_INVENTORY_ADDRESS_SOURCE": "state"}
# (what, argv, extra environment). bench/report.py and plot.py key the rows by
# the start of "what" (curl, lxd_inventory, ...), the last row of a kind
# winning: the extra rows come first and start otherwise.
commands = [
    ("raw GET /1.0/instances?recursion=1 (curl)", raw(f"/1.0/instances?recursion=1&project={project}"), {}),
    (f"raw GET /1.0/networks/{env['BENCH_BRIDGE']}/leases (curl)",
     raw(f"/1.0/networks/{env['BENCH_BRIDGE']}/leases?project={project}"), {}),
    ("address_source=state: lxd_inventory --list (one recursion=2)", [binary, "--list"], state),
    ("curl: one GET /1.0/instances?recursion=2", ["curl", "-sf", "--unix-socket", socket, "-o", "/dev/null", api], {}),
    ("lxd_inventory --list", [binary, "--list"], {}),
    ("ansible-inventory -i lxd_inventory --list", ["ansible-inventory", "-i", binary, "--list"], {}),
    ("ansible-inventory -i *lxd.yml --list (community.general.lxd)",
     ["ansible-inventory", "-i", f"{work}/bench_lxd.yml", "--list"], {}),
    ("ansible-inventory, empty inventory (Ansible's floor)", ["ansible-inventory", "-i", f"{work}/empty.yml", "--list"], {}),
]
times = {name: [] for name, _, _ in commands}
load_before = os.getloadavg()

def once(argv, extra):
    t = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**env, **extra})
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed with exit code {r.returncode}")
    return dt

for rnd in range(runs + 2):
    order = list(commands)
    random.shuffle(order)
    for name, argv, extra in order:
        dt = once(argv, extra)
        if rnd >= 2:
            times[name].append(dt)

rows = [{"what": name, "min_s": min(ts), "median_s": statistics.median(ts), "max_s": max(ts),
         "mean_s": statistics.fmean(ts), "runs": len(ts), "times_s": ts} for name, ts in times.items()]
median = {name: statistics.median(ts) for name, ts in times.items()}
curl, ours, ours_state, ours_e2e, theirs, floor = (median[name] for name in (
    "curl: one GET /1.0/instances?recursion=2", "lxd_inventory --list",
    "address_source=state: lxd_inventory --list (one recursion=2)", "ansible-inventory -i lxd_inventory --list",
    "ansible-inventory -i *lxd.yml --list (community.general.lxd)",
    "ansible-inventory, empty inventory (Ansible's floor)"))
goals = {
    "binary_s": {"median_s": ours, "goal": "<= 0.1", "met": ours <= 0.1},
    "binary_vs_raw_request": {"ratio": ours / curl, "goal": "<= 1.2", "met": ours / curl <= 1.2},
    "leases_vs_state": {"ratio": ours_state / ours, "what": "address_source=state / leases, binary medians"},
    "community_vs_ours_end_to_end": {"ratio": theirs / ours_e2e, "goal": ">= 2", "met": theirs / ours_e2e >= 2},
    "beyond_ansible_floor_ours_s": ours_e2e - floor,
    "beyond_ansible_floor_community_s": theirs - floor,
}
doc = {"benchmark": "inventory", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "instances": count, "api_answer_bytes": size, "host": platform.node(), "cpus": os.cpu_count(),
       "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
       "method": "interleaved rounds, shuffled order, 2 warm-up rounds", "results": rows, "goals": goals}
with open(dst, "w") as f:
    json.dump(doc, f, indent=2)
w = max(len(r["what"]) for r in rows)
print(f"\n{count} instances, API answer {size} bytes, {runs} rounds, load average {load_before[0]:.1f} before / {os.getloadavg()[0]:.1f} after")
print(f"| {'what'.ljust(w)} | min s | median s | max s | x curl |")
print(f"|{'-' * (w + 2)}|------:|---------:|------:|-------:|")
for r in rows:
    print(f"| {r['what'].ljust(w)} | {r['min_s']:.3f} | {r['median_s']:.3f} | {r['max_s']:.3f} | {r['median_s'] / curl:6.2f} |")
g = goals
met = lambda x: "met" if x["met"] else "NOT met"
print(f"\nlxd_inventory --list: {ours:.3f} s median (goal <= 0.1 s: {met(g['binary_s'])}); "
      f"{g['leases_vs_state']['ratio']:.1f}x faster than with address_source=state ({ours_state:.3f} s)")
print(f"lxd_inventory vs one raw recursion=2 request (medians): {g['binary_vs_raw_request']['ratio']:.2f}x (goal <= 1.2: {met(g['binary_vs_raw_request'])})")
print(f"community.general.lxd vs ours, end to end (medians): {g['community_vs_ours_end_to_end']['ratio']:.2f}x (goal >= 2: {met(g['community_vs_ours_end_to_end'])})")
print(f"beyond Ansible's floor: ours {g['beyond_ansible_floor_ours_s']:.3f} s, community.general.lxd {g['beyond_ansible_floor_community_s']:.3f} s")
PY

# The figures only mean something if all instances were there throughout.
n="$(addressed)"
if [[ "$n" -ne "$count" ]]; then
  echo "only $n of $count instances were left at the end: the timings are void" >&2
  exit 1
fi
cp "$work/inventory.json" "$out_json"
echo "written: $out_json"
