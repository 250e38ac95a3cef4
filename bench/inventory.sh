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
# BENCH_INV_HOSTS_FILE: list over HTTPS the LXD (or cluster) of that hosts file's
# one entry instead of the local socket (e.g. /etc/vrrp-lxd/cluster/hosts.yml):
# curl with its client certificate and the server's key pinned, lxd_inventory
# pointed at a copy naming the project; on a cluster the instances are spread
# over the online members (`--target`, round robin). The instances are made
# with the `lxc` of the host container whose address the URL names
# (BENCH_INV_VIA overrides), on the entry's profiles; the endpoint must be
# routed through the file's `lan.bridge`. No community.general.lxd row and no
# leases (the entry's instances sit on macvlan, outside any LXD network).
# BENCH_INV_OUT: where the JSON goes.
# More instances than the project bridge's DHCP range holds (BENCH_INV_COUNT
# above 90): the instances get a bridge of their own for the run,
# BENCH_INV_BRIDGE (vrrpinv0, BENCH_INV_SUBNET 10.236.0.1/22, NAT off, no
# upstream DNS), through a profile of the same name; both are removed after.
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
out_json="${BENCH_INV_OUT:-$root/bench/results/inventory.json}"
hosts_file="${BENCH_INV_HOSTS_FILE:-}"

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

# lxc_on: the lxc that reaches the LXD being listed; curl_api PATH: one GET of
# its API, the answer on stdout.
bridge="$VRRP_BRIDGE"
own_bridge=""
if [[ -z "$hosts_file" ]]; then
  lxc_on() { lxc "$@"; }
  curl_base=(curl -s --unix-socket "$socket")
  api_base="http://lxd"
  launch_profiles=(-p "$VRRP_PROFILE")
  targets=()
  if ((count > 90)); then
    own_bridge="${BENCH_INV_BRIDGE:-vrrpinv0}"
    bridge="$own_bridge"
    launch_profiles=(-p "$own_bridge")
  fi
else
  eval "$("$VRRP_VENV/bin/python" - "$hosts_file" <<'PY'
import shlex, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
hosts = doc.get("hosts", [])
if len(hosts) != 1:
    sys.exit(f"{sys.argv[1]}: {len(hosts)} entries; the benchmark lists one (a host or a cluster)")
h = hosts[0]
vals = {"remote_url": h["url"], "remote_cert": h["client_cert"], "remote_key": h["client_key"],
        "remote_server_cert": h["server_cert"], "remote_cluster": "1" if h.get("cluster") else "",
        "remote_bridge": (doc.get("lan") or {}).get("bridge", "")}
for k, v in vals.items():
    print(f"{k}={shlex.quote(str(v))}")
print("remote_profiles=(" + " ".join(shlex.quote(p) for p in h.get("profiles", ["default"])) + ")")
PY
)"
  remote_addr="${remote_url#https://}" remote_addr="${remote_addr%:*}"
  if ! ip route get "$remote_addr" | grep -q " dev $remote_bridge "; then
    echo "$remote_addr is not routed via ${remote_bridge:-a bridge of the test bed}: $(ip route get "$remote_addr")" >&2
    exit 1
  fi
  via="${BENCH_INV_VIA:-$(lxc list --format csv -c n4 | awk -F, -v a="$remote_addr " '{gsub(/"/, "", $2)} index($2, a) == 1 {print $1}')}"
  [[ -n "$via" ]] || { echo "no host container with address $remote_addr (set BENCH_INV_VIA)" >&2; exit 1; }
  lxc_on() { lxc exec "$via" -- lxc "$@"; }
  spki="$(openssl x509 -in "$remote_server_cert" -pubkey -noout | openssl pkey -pubin -outform DER |
    openssl dgst -sha256 -binary | base64)"
  curl_base=(curl -s -k --pinnedpubkey "sha256//$spki" --cert "$remote_cert" --key "$remote_key")
  api_base="$remote_url"
  launch_profiles=()
  for p in "${remote_profiles[@]}"; do launch_profiles+=(-p "$p"); done
  targets=()
  if [[ -n "$remote_cluster" ]]; then
    mapfile -t targets < <("${curl_base[@]}" "$api_base/1.0/cluster/members?recursion=1" |
      jq -r '.metadata[] | select(.status == "Online") | .server_name')
    ((${#targets[@]})) || { echo "the cluster at $remote_url lists no online member" >&2; exit 1; }
  fi
  # The same image as here (the same fingerprint), brought over once.
  fp="$(lxc image info "$image" | awk '/^Fingerprint:/ {print $2}')"
  if [[ "$(lxc_on image info "$image" 2>/dev/null | awk '/^Fingerprint:/ {print $2}')" != "$fp" ]]; then
    echo "==> importing $image into the LXD at $remote_url (through $via)"
    exp="$(mktemp -d)"
    lxc image export "$image" "$exp/" >/dev/null
    lxc exec "$via" -- sh -c 'rm -rf /root/bench-image && mkdir -p /root/bench-image'
    lxc file push --quiet "$exp"/* "$via/root/bench-image/"
    rm -rf "$exp"
    lxc_on image alias delete "$image" >/dev/null 2>&1 || true
    lxc exec "$via" -- sh -c "cd /root/bench-image && lxc image import \$(ls meta-* 2>/dev/null) \
      \$(ls | grep -v '^meta-') --alias '$image' >/dev/null"
    lxc exec "$via" -- rm -rf /root/bench-image
  fi
fi
api_get() { "${curl_base[@]}" "$api_base$1"; }

work="$(mktemp -d)"
created_project=0
created_bridge=0
created_bridge_profile=0
names=()
cleanup() {
  local rc=$?
  if [[ "${KEEP:-}" == 1 ]]; then
    echo "KEEP=1: leaving ${#names[@]} instances in project $project"
  else
    if ((${#names[@]})); then
      echo "==> deleting ${#names[@]} instances"
      lxc_on delete -f --project "$project" "${names[@]}" >/dev/null 2>&1 || true
    fi
    if ((created_project)); then
      lxc_on project delete "$project" >/dev/null 2>&1 || echo "warning: project $project not deleted" >&2
    fi
  fi
  if [[ "${KEEP:-}" != 1 ]]; then
    if ((created_bridge_profile)); then
      timeout 60 lxc profile delete "$own_bridge" >/dev/null 2>&1 || echo "warning: profile $own_bridge not deleted" >&2
    fi
    if ((created_bridge)); then
      timeout 60 lxc network delete "$own_bridge" >/dev/null 2>&1 || echo "warning: network $own_bridge not deleted" >&2
    fi
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Made here, after the trap, so that a failure on the way removes them too;
# a bridge or profile of that name that was there before is used and left.
if [[ -n "$own_bridge" ]]; then
  if ! timeout 60 lxc network show "$own_bridge" >/dev/null 2>&1; then
    echo "==> bridge $own_bridge (${BENCH_INV_SUBNET:-10.236.0.1/22}) for $count instances"
    created_bridge=1
    timeout 60 lxc network create "$own_bridge" ipv4.address="${BENCH_INV_SUBNET:-10.236.0.1/22}" \
      ipv4.nat=false ipv6.address=none raw.dnsmasq=no-resolv >/dev/null
  fi
  if ! timeout 60 lxc profile show "$own_bridge" >/dev/null 2>&1; then
    created_bridge_profile=1
    timeout 60 lxc profile copy "$VRRP_PROFILE" "$own_bridge"
    timeout 60 lxc profile device set "$own_bridge" eth0 network "$own_bridge"
  fi
fi

if ! lxc_on project show "$project" >/dev/null 2>&1; then
  lxc_on project create "$project" -c features.images=false -c features.profiles=false \
    -c features.storage.volumes=false -c features.networks=false >/dev/null
  created_project=1
elif [[ "$project" == bench-* ]]; then
  created_project=1 # left by a run that was killed: ours to remove
fi

# Holding the lock, any bench-inv-* already in the project is a leftover of a
# run that was killed: remove it so the count is exact.
stale=($(lxc_on list --project "$project" --format csv -c n | grep '^bench-inv-' || true))
if ((${#stale[@]})); then
  echo "==> deleting ${#stale[@]} leftover instances of an earlier run"
  lxc_on delete -f --project "$project" "${stale[@]}" >/dev/null
fi
for i in $(seq -w 1 "$count"); do names+=("bench-inv-$i"); done
echo "==> launching $count instances of $image in project $project"
t0=$(date +%s.%N)
launch_one() {  # INDEX NAME
  local target=()
  ((${#targets[@]} == 0)) || target=(--target "${targets[$(($1 % ${#targets[@]}))]}")
  lxc_on launch "$image" "$2" --project "$project" "${launch_profiles[@]}" "${target[@]}" -q
}
export -f launch_one lxc_on
export image project via
export BENCH_TARGETS="${targets[*]}" BENCH_PROFILES="${launch_profiles[*]}"
for i in "${!names[@]}"; do echo "$i ${names[$i]}"; done |
  xargs -P 4 -L1 bash -c 'targets=($BENCH_TARGETS) launch_profiles=($BENCH_PROFILES); launch_one "$@"' _
api="/1.0/instances?recursion=2&project=$project"
addressed() {
  api_get "$api" | jq '[.metadata[]
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
printf 'all:\n  hosts: {}\n' >"$work/empty.yml"
export ANSIBLE_CONFIG="$work/ansible.cfg" PATH="$venv_bin:$PATH" BENCH_BIN="$bin" BENCH_WORK="$work" \
  BENCH_CURL="$(printf '%s\n' "${curl_base[@]}" | jq -R . | jq -sc .)" BENCH_API_BASE="$api_base" \
  BENCH_REMOTE="${hosts_file:+1}"
cd "$work"
if [[ -z "$hosts_file" ]]; then
  cat >"$work/bench_lxd.yml" <<YML
plugin: community.general.lxd
url: unix:$socket
project: $project
YML
  export LXD_INVENTORY_PROJECT="$project" LXD_INVENTORY_URL="unix:$socket" BENCH_BRIDGE="$bridge"
  unset LXD_INVENTORY_CONFIG

  # Sanity: every instance with its address, both ways, before timing anything;
  # from the leases and from the state the same addresses.
  "$bin" --list >"$work/leases.json"
  LXD_INVENTORY_ADDRESS_SOURCE=state "$bin" --list >"$work/state.json"
  if ! jq -e -n --slurpfile a "$work/leases.json" --slurpfile b "$work/state.json" \
    '($a[0]._meta.hostvars | map_values(.ansible_host)) == ($b[0]._meta.hostvars | map_values(.ansible_host))' >/dev/null; then
    echo "lxd_inventory: the addresses from the leases and from the state differ" >&2
    exit 1
  fi
  # How many instances the bridge's leases cover (the MAC and the name of the
  # instance): lxd_inventory reads the state of the others, one request each.
  leased="$(jq -n --slurpfile i <(api_get "/1.0/instances?recursion=1&project=$project") \
    --slurpfile l <(api_get "/1.0/networks/$bridge/leases?project=$project") \
    '[$i[0].metadata[] | . as $x | select(any($l[0].metadata[];
       .hostname == $x.name and (.hwaddr | ascii_downcase) == ($x.config["volatile.eth0.hwaddr"] // "" | ascii_downcase)))]
     | length')"
  echo "==> the leases of $bridge give $leased of the $count addresses; lxd_inventory reads the state of the other $((count - leased))"
  theirs="$(ansible-inventory -i bench_lxd.yml --list 2>/dev/null |
    jq '[._meta.hostvars[] | select(.ansible_host)] | length')"
else
  # The entry as the playbooks have it, but listing the benchmark's project.
  "$VRRP_VENV/bin/python" - "$hosts_file" "$project" >"$work/hosts.yml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
doc["hosts"][0]["project"] = sys.argv[2]
yaml.safe_dump(doc, sys.stdout)
PY
  printf 'hosts_file: %s\nconnection: lxd_api\n' "$work/hosts.yml" >"$work/lxd_inventory.yml"
  for v in $(compgen -e | grep '^LXD_INVENTORY_' || true); do unset "$v"; done
  export LXD_INVENTORY_CONFIG="$work/lxd_inventory.yml"
  per_member="$("$bin" --list | jq -c '[._meta.hostvars[] | .lxd_location // "-"] | group_by(.) | map({(.[0]): length}) | add')"
  echo "==> per member: $per_member"
  export BENCH_PER_MEMBER="$per_member"
  theirs="$count" # not listed: community.general.lxd has no hosts file
fi
ours="$("$bin" --list | jq '[._meta.hostvars[] | select(.ansible_host)] | length')"
e2e="$(ansible-inventory -i "$bin" --list 2>/dev/null | jq '[._meta.hostvars[] | select(.ansible_host)] | length')"
bytes="$(api_get "$api" | wc -c)"
also=", community.general.lxd $theirs"
[[ -z "$hosts_file" ]] || also=""
echo "==> hosts with ansible_host: lxd_inventory $ours, via ansible-inventory $e2e$also; API answer $bytes bytes"
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
binary, work, remote = env["BENCH_BIN"], env["BENCH_WORK"], env.get("BENCH_REMOTE") == "1"
curl_base, api_base = json.loads(env["BENCH_CURL"]), env["BENCH_API_BASE"]
raw = lambda path: [*curl_base, "-f", "-o", "/dev/null", f"{api_base}{path}"]
api = f"/1.0/instances?recursion=2&project={project}"
state = {"LXD_INVENTORY_ADDRESS_SOURCE": "state"}
# (what, argv, extra environment). bench/report.py and plot.py key the rows by
# the start of "what" (curl, lxd_inventory, ...), the last row of a kind
# winning: the extra rows come first and start otherwise.
commands = [
    ("raw GET /1.0/instances?recursion=1 (curl)", raw(f"/1.0/instances?recursion=1&project={project}"), {}),
    *([] if remote else [
        (f"raw GET /1.0/networks/{env['BENCH_BRIDGE']}/leases (curl)",
         raw(f"/1.0/networks/{env['BENCH_BRIDGE']}/leases?project={project}"), {}),
        ("address_source=state: lxd_inventory --list (one recursion=2)", [binary, "--list"], state)]),
    ("curl: one GET /1.0/instances?recursion=2", raw(api), {}),
    ("lxd_inventory --list", [binary, "--list"], {}),
    ("ansible-inventory -i lxd_inventory --list", ["ansible-inventory", "-i", binary, "--list"], {}),
    *([] if remote else [
        ("ansible-inventory -i *lxd.yml --list (community.general.lxd)",
         ["ansible-inventory", "-i", f"{work}/bench_lxd.yml", "--list"], {})]),
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
curl, ours, ours_e2e, floor = (median[name] for name in (
    "curl: one GET /1.0/instances?recursion=2", "lxd_inventory --list",
    "ansible-inventory -i lxd_inventory --list", "ansible-inventory, empty inventory (Ansible's floor)"))
goals = {
    "binary_s": {"median_s": ours, "goal": "<= 0.1", "met": ours <= 0.1},
    "binary_vs_raw_request": {"ratio": ours / curl, "goal": "<= 1.2", "met": ours / curl <= 1.2},
    "beyond_ansible_floor_ours_s": ours_e2e - floor,
}
if not remote:
    ours_state = median["address_source=state: lxd_inventory --list (one recursion=2)"]
    theirs = median["ansible-inventory -i *lxd.yml --list (community.general.lxd)"]
    goals.update({
        "leases_vs_state": {"ratio": ours_state / ours, "what": "address_source=state / leases, binary medians"},
        "community_vs_ours_end_to_end": {"ratio": theirs / ours_e2e, "goal": ">= 2", "met": theirs / ours_e2e >= 2},
        "beyond_ansible_floor_community_s": theirs - floor,
    })
doc = {"benchmark": "inventory", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "instances": count, "api_answer_bytes": size, "host": platform.node(), "cpus": os.cpu_count(),
       "endpoint": api_base, "per_member": json.loads(env.get("BENCH_PER_MEMBER") or "null"),
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
print(f"\nlxd_inventory --list: {ours:.3f} s median (goal <= 0.1 s: {met(g['binary_s'])})"
      + ("" if remote else f"; {g['leases_vs_state']['ratio']:.1f}x faster than with address_source=state ({ours_state:.3f} s)"))
print(f"lxd_inventory vs one raw recursion=2 request (medians): {g['binary_vs_raw_request']['ratio']:.2f}x (goal <= 1.2: {met(g['binary_vs_raw_request'])})")
if not remote:
    print(f"community.general.lxd vs ours, end to end (medians): {g['community_vs_ours_end_to_end']['ratio']:.2f}x (goal >= 2: {met(g['community_vs_ours_end_to_end'])})")
    print(f"beyond Ansible's floor: ours {g['beyond_ansible_floor_ours_s']:.3f} s, community.general.lxd {g['beyond_ansible_floor_community_s']:.3f} s")
else:
    print(f"beyond Ansible's floor: ours {g['beyond_ansible_floor_ours_s']:.3f} s")
PY

# The figures only mean something if all instances were there throughout.
n="$(addressed)"
if [[ "$n" -ne "$count" ]]; then
  echo "only $n of $count instances were left at the end: the timings are void" >&2
  exit 1
fi
cp "$work/inventory.json" "$out_json"
echo "written: $out_json"
