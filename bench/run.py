"""Benchmarks of vrrp-lxd on the local LXD, each figure beside its baseline.

Run through bench/run.sh (`make bench`). Sections, in order:

failover   Two load-balancer pairs side by side, HAProxy answering by itself:
           ours (keepalived_vrrp defaults, set up with ansible-playbook) and the
           seed's keepalived.conf written by hand. A probe every 20 ms through each
           VIP while HAProxy is stopped, killed (-9) and the holder instance is
           stopped hard.
growth     playbooks/site.yml from nothing and again (converged), then add_web.yml,
           add_lb.yml and rolling_restart_web.yml under the probe.
inventory  bench/inventory.sh (50 tiny instances listed four ways).
tasks      20 tasks x 2 hosts: apache_site against the Python modules a user would
           write for the same sites (pipelining on for Python).
dns        site.yml makes 2 LB + 2 web; the zone's names queried through the VIP
           every 20 ms (100 ms timeout, no retry: a lost query holds the loop that long): latency; queries lost while
           `systemctl stop knot` runs on the VIP holder (planned) and while the
           holder is stopped hard (`lxc stop -f`), each undone before the next.
tls        site.yml -e vrrp_tls=true makes 2 LB + 2 web; a GET through the VIP
           every 20 ms over a new verified TLS connection each (handshake and
           request latency), then GETs one after another for 3 s over HTTPS and
           over plain HTTP, a new connection each (requests per second, one client).
hostloss   Two LXD hosts (the test bed of `make hosts-up`): site.yml spreads 2 LB + 2
           web over them; a planned `systemctl stop haproxy` on the VIP holder, then
           `lxc stop -f` of the whole host that holds the VIP (VIP window, time until
           the surviving HAProxy marks the dead web node DOWN, failed requests), the
           host started again and site.yml re-run; inventory over two hosts against
           one. Skipped in a full run when the test bed is not up.
cluster    The LXD cluster test bed (`make cluster-up`; raised here when it is not
           up, then taken down): bench/inventory.sh against the cluster's endpoint
           (50 tiny instances over the three members), then 2 LB + 2 web and
           evacuate_host.yml (vrrp_evacuate_mode=migrate) on the VIP holder's member
           under the probe, and restore_host.yml.
soak       bench/soak.py: its own 2 LB + 2 web topology, a steady open-loop 50
           requests a second (GET and POST) through the VIP for BENCH_SOAK_MIN
           minutes (2.5) while a seeded schedule kills, stops and restarts HAProxy,
           the holder instance and Apache and runs add_web/remove_web; quiet and
           with CPU burners; per event kind the failed GETs and POSTs, the longest
           outage, VIP moves no event explains (`make soak`: 10 minutes).
sizes      module binaries in dist/library.

Every instance is named bench-* and deleted at the end (KEEP=1 keeps them); the
hostloss section's are on the test bed's hosts, which it leaves running.
Probes only go to VIPs on the project's bridges (vrrpbr0, and vrrplan0 for the
test bed), checked with `ip route get`, bounded in time.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
VENV = Path(os.environ.get("VRRP_VENV", "/opt/vrrp-lxd/venv"))
IMAGE = os.environ.get("VRRP_IMAGE", "vrrp-lxd/bookworm")
PROFILE = os.environ.get("VRRP_PROFILE", "vrrp-lxd")
BRIDGE = os.environ.get("VRRP_BRIDGE", "vrrpbr0")
PROBE = ROOT / "dist/bin/vrrp-probe"
LIBRARY = ROOT / "dist/library"
# Scenario playbooks the Rust tests run too.
SCENARIOS = ROOT / "testbed/playbooks"

REPS = max(1, int(os.environ.get("BENCH_REPS", "5")))
ONLY = {s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",") if s.strip()}
KEEP = os.environ.get("KEEP") == "1"
N_TASKS = int(os.environ.get("BENCH_TASKS", "20"))

# Address plan (see the project's allocations): bench owns .50-.59 / VRID 150-159.
OURS_VIP, OURS_VRID = "10.231.0.50", 150
SEED_VIP, SEED_VRID = "10.231.0.51", 151
TOPO_PREFIX, TOPO_VIP, TOPO_VRID = "bench-topo-", "10.231.0.55", 155
DNS_PREFIX, DNS_VIP, DNS_VRID = "bench-dns-", "10.231.0.56", 156
TLS_PREFIX, TLS_VIP, TLS_VRID = "bench-tls-", "10.231.0.57", 157

RUN_ID = f"{os.getpid()}"
# A repetition that fails (a playbook error, a hung `lxc exec`) is recorded and made
# again, up to this many extra times per section.
MAX_RETRIES = int(os.environ.get("BENCH_RETRIES", "2"))
PYTHON_ENV = {
    "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}",
    "ANSIBLE_HOST_KEY_CHECKING": "False",
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- clean-up

_created: set[str] = set()
_created_lock = threading.Lock()
_children: set[subprocess.Popen] = set()
_cleanup_dirs: list[Path] = []
# Sections with instances elsewhere (the two-host test bed) add their own clean-up;
# each is called with keep=KEEP and runs also under KEEP=1 (it must at least leave
# the test bed's hosts running).
_cleanup_hooks: list = []


def cleanup() -> None:
    for p in list(_children):
        if p.poll() is None:
            p.kill()
    for hook in list(_cleanup_hooks):
        try:
            hook(KEEP)
        except Exception as e:  # noqa: BLE001 - clean-up goes on
            log(f"clean-up: {e}")
    names = sorted(_created | set(lxc_names(TOPO_PREFIX)))
    if KEEP:
        if names:
            log(f"KEEP=1: leaving {' '.join(names)}")
        return
    if names:
        log(f"deleting {len(names)} bench instances")
        # One at a time: a failure on one does not keep the others.
        for n in names:
            subprocess.run(["lxc", "delete", "-f", n], capture_output=True)
    for d in _cleanup_dirs:
        shutil.rmtree(d, ignore_errors=True)
    _created.clear()


def _on_signal(signum, _frame):
    log(f"signal {signum}: cleaning up")
    cleanup()
    sys.exit(128 + signum)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


# ---------------------------------------------------------------- LXD

def sh(cmd: list[str], check: bool = True, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {p.returncode}): {p.stdout}{p.stderr}")
    return p


def lxc_names(prefix: str) -> list[str]:
    p = sh(["lxc", "list", "--format", "csv", "-c", "n"], check=False)
    return [n for n in p.stdout.split() if n.startswith(prefix)]


def lxc_exec(name: str, cmd: str, check: bool = True, timeout: float = 120) -> str:
    return sh(["lxc", "exec", name, "--", "sh", "-c", cmd], check=check, timeout=timeout).stdout


def eth0_ipv4(state: dict) -> str | None:
    """eth0's global IPv4 in an instance's state as LXD reports it."""
    for a in ((state.get("network") or {}).get("eth0") or {}).get("addresses") or []:
        if a.get("family") == "inet" and a.get("scope") == "global":
            return a["address"]
    return None


def ipv4(name: str) -> str | None:
    p = sh(["lxc", "query", f"/1.0/instances/{name}/state"], check=False)
    try:
        state = json.loads(p.stdout)
    except ValueError:
        return None
    return eth0_ipv4(state) if isinstance(state, dict) else None


def wait_ipv4(name: str, timeout: float = 180) -> str:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        ip = ipv4(name)
        if ip:
            return ip
        time.sleep(0.5)
    raise RuntimeError(f"{name}: no IPv4 on eth0 within {timeout} s")


def wait_booted(name: str, timeout: float = 240) -> None:
    lxc_exec(name, f"timeout {int(timeout)} systemctl is-system-running --wait >/dev/null 2>&1 || true",
             check=False, timeout=timeout + 30)


def launch(name: str) -> str:
    with _created_lock:
        _created.add(name)
    sh(["lxc", "launch", IMAGE, name, "-p", PROFILE, "-q"], timeout=600)
    ip = wait_ipv4(name)
    wait_booted(name)
    return ip


def side_by_side(names: list[str], one) -> dict[str, object]:
    """`one(name)` for every name at once; what each returned, by name. Every
    call ends before a failure is raised, naming each name that failed."""
    out: dict[str, object] = {}
    errors: list[str] = []

    def run(n: str) -> None:
        try:
            out[n] = one(n)
        except Exception as e:  # noqa: BLE001 - reported below, after every call ended
            errors.append(f"{n}: {e}")

    threads = [threading.Thread(target=run, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("; ".join(errors))
    return out


def launch_all(names: list[str]) -> dict[str, str]:
    return side_by_side(names, launch)


def delete(names: list[str]) -> None:
    if KEEP:
        return
    for n in names:
        sh(["lxc", "delete", "-f", n], check=False)
        with _created_lock:
            _created.discard(n)


def routed_via_bridge(ip: str, bridge: str = BRIDGE) -> bool:
    """The kernel routes `ip` through `bridge` (the project's vrrpbr0, or the
    two-host test bed's LAN, vrrplan0)."""
    p = sh(["ip", "route", "get", ip], check=False)
    words = p.stdout.split()
    return p.returncode == 0 and any(a == "dev" and b == bridge for a, b in zip(words, words[1:]))


IP_ADDRS = ["ip", "-4", "-o", "addr", "show"]


def vip_holders(names: list[str], vip: str, ip_addrs=None, timeout: float = 120) -> list[str]:
    """Those of `names` whose interfaces carry `vip`, read from the kernel, in their
    order. `ip_addrs(name)` returns what IP_ADDRS prints there (default: run it
    through the local LXD, each for at most `timeout` seconds)."""
    def local(n: str) -> str:
        return sh(["lxc", "exec", n, "--", *IP_ADDRS], check=False, timeout=timeout).stdout
    # With its prefix length, so that 10.231.0.5 does not match 10.231.0.50.
    return [n for n in names if f"inet {vip}/" in (ip_addrs or local)(n)]


# ---------------------------------------------------------------- probe

class Probe:
    """dist/bin/vrrp-probe in the background, stopped through its stop file."""

    def __init__(self, ip: str, timeout_ms: int = 500, max_s: float = 600, port: int = 80,
                 bridge: str = BRIDGE, interval_ms: int = 20):
        self._start(ip, bridge, [f"http://{ip}:{port}/", "--interval-ms", str(interval_ms),
                                 "--timeout-ms", str(timeout_ms)], max_s)

    def _start(self, ip: str, bridge: str, args: list[str], max_s: float) -> None:
        """vrrp-probe with `args` (its URL first), for at most `max_s` seconds."""
        if not routed_via_bridge(ip, bridge):
            raise RuntimeError(f"{ip} is not routed via {bridge}; refusing to probe it")
        self.dir = Path(tempfile.mkdtemp(prefix="bench-probe-"))
        self.stop_file = self.dir / "stop"
        # vrrp-probe checks the route itself, against VRRP_BRIDGE.
        self.proc = subprocess.Popen(
            [str(PROBE), *args, "--duration-s", str(max_s), "--stop-file", str(self.stop_file)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "VRRP_BRIDGE": bridge})
        _children.add(self.proc)

    def stop(self) -> dict:
        self.stop_file.touch()
        out, err = self.proc.communicate(timeout=60)
        _children.discard(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.proc.returncode != 0:
            raise RuntimeError(f"vrrp-probe failed: {err.strip()}")
        return json.loads(out)


def sample(ip: str, seconds: float, timeout_ms: int = 500, bridge: str = BRIDGE) -> dict:
    p = Probe(ip, timeout_ms=timeout_ms, max_s=seconds + 5, bridge=bridge)
    time.sleep(seconds)
    return p.stop()


def wait_answering(ip: str, timeout: float, backends: int = 1, bridge: str = BRIDGE) -> dict:
    """Probes in 1 s rounds until a round has no failure and >= `backends` backends."""
    start = time.monotonic()
    while True:
        r = sample(ip, 1.0, bridge=bridge)
        if r["failed"] == 0 and r["ok"] > 0 and len(r["backends"]) >= backends:
            return r
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"{ip} not answering cleanly within {timeout} s: {r}")


# ---------------------------------------------------------------- ansible

def ansible_playbook(playbook: Path, args: list[str], log_path: Path, cwd: Path = ROOT,
                     env: dict | None = None, timeout: float = 1200) -> dict:
    """Runs ansible-playbook with the JSON callback; returns rc, seconds, changed, failures."""
    e = dict(os.environ)
    e.update(PYTHON_ENV)
    e["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    for k in [k for k in e if k.startswith("LXD_INVENTORY_")]:
        del e[k]
    if env:
        e.update(env)
    cmd = [str(VENV / "bin/ansible-playbook"), str(playbook), *args]
    t0 = time.monotonic()
    # Its own process group, so a run stuck past `timeout` (an `lxc exec` that never
    # returns on a loaded host) is ended with everything it started.
    proc = subprocess.Popen(cmd, cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, process_group=0)
    _children.add(proc)
    hung = _Watchdog(proc, timeout)
    hung.start()
    stdout, stderr = proc.communicate()
    hung.done.set()
    rc = proc.returncode
    if hung.reason:
        stderr += f"\nbench: {hung.reason}"
    _children.discard(proc)
    secs = time.monotonic() - t0
    p = subprocess.CompletedProcess(cmd, rc, stdout, stderr)
    log_path.write_text(f"$ {' '.join(cmd)}\n# rc {p.returncode}, {secs:.1f} s\n{p.stdout}\n{p.stderr}")
    changed = failures = 0
    try:
        doc = json.loads(p.stdout)
        for host, s in doc.get("stats", {}).items():
            changed += s.get("changed", 0)
            failures += s.get("failures", 0) + s.get("unreachable", 0)
    except ValueError:
        doc = None
    out = {"rc": p.returncode, "seconds": secs, "changed": changed, "failures": failures,
           "log": str(log_path)}
    if hung.reason:
        out["killed"] = hung.reason
    return out


HANG_S = float(os.environ.get("BENCH_HANG_S", "120"))


class _Watchdog(threading.Thread):
    """Ends an ansible-playbook run (its whole process group) when it passes
    `timeout`, or when one `lxc exec` under it has run for HANG_S: on a loaded host
    LXD now and then leaves an exec hanging after the command inside has ended, and
    the run would wait for ever. Such a run is discarded and repeated."""

    def __init__(self, proc: subprocess.Popen, timeout: float):
        super().__init__(daemon=True)
        self.proc, self.timeout = proc, timeout
        self.done = threading.Event()
        self.reason = ""

    def _stuck_exec(self) -> str | None:
        ps = subprocess.run(["ps", "-eo", "pid=,pgid=,etimes=,args="], capture_output=True, text=True)
        for line in ps.stdout.splitlines():
            parts = line.split(None, 3)
            if len(parts) == 4 and parts[1] == str(self.proc.pid) and parts[3].startswith("/usr/bin/lxc exec") \
                    and int(parts[2]) > HANG_S:
                return parts[3][:160]
        return None

    def run(self) -> None:
        start = time.monotonic()
        while not self.done.wait(5):
            stuck = self._stuck_exec()
            if stuck or time.monotonic() - start > self.timeout:
                self.reason = (f"killed: `{stuck}` hung for more than {HANG_S:.0f} s" if stuck
                               else f"killed after {self.timeout:.0f} s")
                log(f"  {self.reason}")
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return


def lxd_inventory_ini(groups: dict[str, list[str]]) -> str:
    lines = []
    for g, hosts in groups.items():
        lines.append(f"[{g}]")
        for h in hosts:
            lines.append(f"{h} ansible_connection=community.general.lxd ansible_lxd_host={h} "
                         "ansible_python_interpreter=/usr/bin/python3")
    return "\n".join(lines) + "\n"


def bench_ansible_cfg(work: Path) -> Path:
    cfg = work / "ansible.cfg"
    cfg.write_text(
        "[defaults]\n"
        f"library = {LIBRARY}\n"
        "host_key_checking = False\n"
        "retry_files_enabled = False\n"
        "gathering = explicit\n"
        "forks = 10\n"
        "[inventory]\n"
        "enable_plugins = ansible.builtin.ini\n")
    return cfg


# ---------------------------------------------------------------- stats

def mmm(values: list[float]) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"min": None, "median": None, "max": None, "n": 0}
    return {"min": min(vals), "median": statistics.median(vals), "max": max(vals), "n": len(vals)}


class LoadSampler(threading.Thread):
    """/proc/loadavg every 10 s while the benchmarks run."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append(float(Path("/proc/loadavg").read_text().split()[0]))
            self.halt.wait(10)

    def summary(self) -> dict:
        return {"cpus": os.cpu_count(), "load1": mmm(self.samples),
                "mean_load1": statistics.fmean(self.samples) if self.samples else None}


# ================================================================ failover

# The set-up, shared with modules/keepalived_vrrp/tests/failover.rs: HAProxy answering
# with the host name on every node, then "ours" (keepalived_vrrp with its defaults:
# VRRP v3, advert 0.1 s, HAProxy tracked) and the seed's keepalived.conf as it was
# written by hand: VRRP v2 (keepalived's default), advert 1 s, a polled
# `killall -0 haproxy` every 2 s adding 2 to the priority while HAProxy runs,
# priorities 101 (MASTER) / 100 (BACKUP).
FAILOVER_PLAYBOOK = SCENARIOS / "keepalived_failover.yml"


class Pair:
    def __init__(self, label: str, nodes: list[str], vip: str):
        self.label, self.nodes, self.vip = label, nodes, vip

    def holders(self) -> list[str]:
        return vip_holders(self.nodes, self.vip, timeout=60)

    def wait_holder(self, want: str | None, timeout: float) -> bool:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            try:
                if self.holders() == ([want] if want else []):
                    return True
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.5)
        return False


def measure_event(pairs: list[Pair], event, settled, timeout_ms: int, max_s: float = 30) -> dict:
    """Probes every pair's VIP from 1 s before `event(pair)` (run on all pairs at
    once) until `settled(pair)` holds for all (at least 2 s, at most `max_s`), plus 1 s."""
    probes = {p.label: Probe(p.vip, timeout_ms=timeout_ms, max_s=max_s + 30) for p in pairs}
    time.sleep(1.0)
    errors: list[str] = []

    def fire(p: Pair) -> None:
        try:
            event(p)
        except Exception as e:  # noqa: BLE001
            errors.append(f"{p.label}: {e}")

    threads = [threading.Thread(target=fire, args=(p,)) for p in pairs]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(2.0)
    pending = list(pairs)
    while pending and time.monotonic() - t0 < max_s:
        pending = [p for p in pending if not settled(p)]
        if pending:
            time.sleep(0.5)
    time.sleep(1.0)
    reports = {label: pr.stop() for label, pr in probes.items()}
    for p in pending:
        errors.append(f"{p.label}: not settled within {max_s} s")
    for label, r in reports.items():
        r["errors"] = [e for e in errors if e.startswith(label)]
    return reports


def bench_failover(res: dict, work: Path) -> None:
    ours = [f"bench-fo-{RUN_ID}-ours-1", f"bench-fo-{RUN_ID}-ours-2"]
    seed = [f"bench-fo-{RUN_ID}-seed-1", f"bench-fo-{RUN_ID}-seed-2"]
    log(f"failover: launching {' '.join(ours + seed)}")
    t0 = time.monotonic()
    launch_all(ours + seed)
    log(f"failover: launched in {time.monotonic() - t0:.0f} s")
    inv = work / "failover.ini"
    inv.write_text(lxd_inventory_ini({"ours": ours, "seed": seed}))
    extra = {"fast_name": "VI_bench", "fast_vrid": OURS_VRID, "fast_vip": OURS_VIP,
             "fast_priority": dict(zip(ours, (150, 100))),
             "seed_vrid": SEED_VRID, "seed_vip": SEED_VIP, "seed_by_hand": True,
             "seed_priority": dict(zip(seed, (101, 100)))}
    cfg = bench_ansible_cfg(work)
    run = ansible_playbook(FAILOVER_PLAYBOOK, ["-i", str(inv), "-e", json.dumps(extra)],
                           work / "failover-setup.log", cwd=work, env={"ANSIBLE_CONFIG": str(cfg)})
    if run["rc"] != 0:
        raise RuntimeError(f"failover set-up playbook failed, see {run['log']}")
    pairs = [Pair("ours", ours, OURS_VIP), Pair("seed", seed, SEED_VIP)]
    for p in pairs:
        if not p.wait_holder(p.nodes[0], 30):
            raise RuntimeError(f"{p.label}: {p.nodes[0]} does not hold {p.vip} ({p.holders()})")
        wait_answering(p.vip, 30)
    # The seed's config as it ran, for the record.
    res["seed_keepalived_conf"] = lxc_exec(seed[0], "cat /etc/keepalived/keepalived.conf")
    res["ours_keepalived_conf"] = lxc_exec(ours[0], "cat /etc/keepalived/keepalived.conf")

    scen = {"planned_stop": {"ours": [], "seed": []}, "kill9": {"ours": [], "seed": []},
            "hard_stop": {"ours": [], "seed": []}}
    res["scenarios"] = scen
    res["probe"] = {"interval_ms": 20, "timeout_ms": {"planned_stop": 500, "kill9": 100, "hard_stop": 100}}

    res["errors"] = []
    for rep in range(REPS):
        try:
            failover_rep(rep, pairs, scen)
        except Exception as e:  # noqa: BLE001 - recorded; the next repetition may still run
            log(f"failover rep {rep + 1}/{REPS}: FAILED: {e}")
            res["errors"].append(f"rep {rep + 1}: {e}")
            for p in pairs:  # bring both pairs back to their starting point
                sh(["lxc", "start", p.nodes[0]], check=False)
                lxc_exec(p.nodes[0], "systemctl start haproxy", check=False)
            for p in pairs:
                p.wait_holder(p.nodes[0], 120)
    if len(res["errors"]) == REPS:
        raise RuntimeError("every repetition failed: " + "; ".join(res["errors"]))
    delete(ours + seed)


def _back_home(p: Pair, timeout: float = 90) -> None:
    if not p.wait_holder(p.nodes[0], timeout):
        raise RuntimeError(f"{p.label}: VIP not back on {p.nodes[0]} ({p.holders()})")


def _haproxy_active(n: str) -> bool:
    return lxc_exec(n, "systemctl is-active haproxy || true", check=False).strip() == "active"


def failover_rep(rep: int, pairs: list[Pair], scen: dict) -> None:
    log(f"failover rep {rep + 1}/{REPS}: systemctl stop haproxy on the holder")
    r = measure_event(
        pairs, lambda p: lxc_exec(p.nodes[0], "systemctl stop haproxy"),
        lambda p: p.holders() == [p.nodes[1]], timeout_ms=500)
    for k in r:
        scen["planned_stop"][k].append(r[k])
    summary_line("planned stop", r)
    for p in pairs:
        lxc_exec(p.nodes[0], "systemctl start haproxy")
    for p in pairs:
        _back_home(p)
    time.sleep(3)

    log(f"failover rep {rep + 1}/{REPS}: kill -9 of HAProxy on the holder")
    r = measure_event(
        pairs, lambda p: lxc_exec(p.nodes[0], "kill -9 $(systemctl show -p MainPID --value haproxy)"),
        lambda p: _haproxy_active(p.nodes[0]) and p.holders() == [p.nodes[0]], timeout_ms=100)
    for k in r:
        scen["kill9"][k].append(r[k])
    summary_line("kill -9", r)
    for p in pairs:
        _back_home(p)
    time.sleep(3)  # the seed's 2 s check settles

    log(f"failover rep {rep + 1}/{REPS}: lxc stop -f of the holder")
    r = measure_event(
        pairs, lambda p: sh(["lxc", "stop", "-f", p.nodes[0]], timeout=120),
        lambda p: p.holders() == [p.nodes[1]], timeout_ms=100)
    for k in r:
        scen["hard_stop"][k].append(r[k])
    summary_line("hard stop", r)
    for p in pairs:
        sh(["lxc", "start", p.nodes[0]], timeout=300)
    for p in pairs:
        wait_ipv4(p.nodes[0])
        wait_booted(p.nodes[0])
    for p in pairs:
        _back_home(p, 120)
    time.sleep(3)


def summary_line(what: str, reports: dict) -> None:
    parts = [f"{k}: {r['failed']} failed, longest outage {r['longest_outage_ms']:.0f} ms"
             + (f" ({'; '.join(r['errors'])})" if r.get("errors") else "")
             for k, r in reports.items()]
    log(f"  {what}: " + " | ".join(parts))


# ================================================================ growth

def growth_rep(res: dict, work: Path, rep: int, topo_args: list[str]) -> None:
    """One repetition. Only runs that succeeded enter the figures; a failed one is
    kept under failed_runs (with its probe report) and named in the notes."""
    for n in lxc_names(TOPO_PREFIX):
        sh(["lxc", "delete", "-f", n], check=False)

    def keep(key: str, r: dict) -> None:
        if r["rc"] == 0:
            res[key].append(r)
            return
        r["failed_tasks"] = failed_tasks(r["log"])
        res.setdefault("failed_runs", []).append({"playbook": key, **r})
        why = r.get("killed") or "; ".join(r["failed_tasks"])[:300]
        raise RuntimeError(f"{key} failed ({why}), see {r['log']}")

    log(f"growth attempt {rep + 1}: site.yml from nothing")
    r = ansible_playbook(ROOT / "playbooks/site.yml", topo_args, work / f"growth-{rep}-site.log", timeout=900)
    with _created_lock:
        _created.update(lxc_names(TOPO_PREFIX))
    log(f"  rc {r['rc']} in {r['seconds']:.1f} s, changed {r['changed']}")
    keep("site_from_nothing", r)
    r = ansible_playbook(ROOT / "playbooks/site.yml", topo_args, work / f"growth-{rep}-rerun.log", timeout=600)
    r["changed_tasks"] = changed_tasks(r["log"])
    log(f"  re-run: rc {r['rc']} in {r['seconds']:.1f} s, changed {r['changed']} {r['changed_tasks']}")
    keep("site_rerun", r)
    wait_answering(TOPO_VIP, 60, backends=2)
    for key, pb in [("add_web", "add_web.yml"), ("add_lb", "add_lb.yml"),
                    ("rolling_restart_web", "rolling_restart_web.yml")]:
        log(f"growth attempt {rep + 1}: {pb} under the probe")
        probe = Probe(TOPO_VIP, timeout_ms=500, max_s=900)
        r = ansible_playbook(ROOT / "playbooks" / pb, topo_args, work / f"growth-{rep}-{key}.log", timeout=600)
        time.sleep(1.0)
        r["probe"] = probe.stop()
        log(f"  rc {r['rc']} in {r['seconds']:.1f} s: {r['probe']['failed']} failed of "
            f"{r['probe']['requests']}, longest outage {r['probe']['longest_outage_ms']:.0f} ms")
        with _created_lock:
            _created.update(lxc_names(TOPO_PREFIX))
        keep(key, r)
        wait_answering(TOPO_VIP, 60)


def _json_of_log(path: str) -> dict | None:
    text = Path(path).read_text()
    try:
        return json.loads(text[text.index("{"):text.rindex("}") + 1])
    except ValueError:
        return None


def _task_results(path: str):
    doc = _json_of_log(path) or {}
    for play in doc.get("plays", []):
        for task in play.get("tasks", []):
            for host, r in task.get("hosts", {}).items():
                yield task["task"]["name"], host, r


def changed_tasks(path: str) -> list[str]:
    return [f"{t} on {h}" for t, h, r in _task_results(path) if r.get("changed")]


def failed_tasks(path: str) -> list[str]:
    out = []
    for t, h, r in _task_results(path):
        if r.get("failed") or r.get("unreachable"):
            msgs = [i.get("msg", "") for i in r.get("results", []) if i.get("failed")] or [r.get("msg", "")]
            out.append(f"{t} on {h}: {' / '.join(str(m) for m in msgs)[:300]}")
    return out


def bench_growth(res: dict, work: Path) -> None:
    if not routed_via_bridge(TOPO_VIP):
        raise RuntimeError(f"{TOPO_VIP} is not routed via {BRIDGE}")
    topo_args = ["-e", f"vrrp_prefix={TOPO_PREFIX}", "-e", f"vrrp_vip={TOPO_VIP}",
                 "-e", f"vrrp_vrid={TOPO_VRID}"]
    creds = Path.home() / ".config/vrrp-lxd" / TOPO_PREFIX.rstrip("-")
    _cleanup_dirs.append(creds)
    keys = ["site_from_nothing", "site_rerun", "add_web", "add_lb", "rolling_restart_web"]
    for k in keys:
        res.setdefault(k, [])
    res["playbook_args"] = topo_args
    res["errors"] = []
    done = attempt = 0
    while done < REPS and attempt < REPS + MAX_RETRIES:
        try:
            growth_rep(res, work, attempt, topo_args)
            done += 1
        except Exception as e:  # noqa: BLE001 - recorded; the repetition is made again
            log(f"growth attempt {attempt + 1}: FAILED: {e}")
            res["errors"].append(f"attempt {attempt + 1}: {e}")
        attempt += 1
        delete(lxc_names(TOPO_PREFIX))
    if done == 0:
        raise RuntimeError("every repetition failed: " + "; ".join(res["errors"]))
    shutil.rmtree(creds, ignore_errors=True)


# ================================================================ dns

class DnsQueries(Probe):
    """vrrp-probe's DNS mode: A queries for `name` at `ip`:53 every 20 ms."""

    def __init__(self, ip: str, name: str, max_s: float = 120):
        self._start(ip, BRIDGE, [f"dns://{ip}/{name}", "--interval-ms", "20", "--timeout-ms", "100"], max_s)


def wait_vip_on(prefix: str, vip: str, lb: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while vip_holders(lxc_names(prefix + "lb-"), vip) != [lb]:
        if time.monotonic() > end:
            raise RuntimeError(f"{vip} not back on {lb} within {timeout} s "
                               f"({vip_holders(lxc_names(prefix + 'lb-'), vip)})")
        time.sleep(0.3)


def queried(name: str, action, seconds: float) -> dict:
    q = DnsQueries(DNS_VIP, name)
    time.sleep(0.5)
    action()
    time.sleep(seconds)
    return q.stop()


def bench_dns(res: dict, work: Path) -> None:
    topo_args = ["-e", f"vrrp_prefix={DNS_PREFIX}", "-e", f"vrrp_vip={DNS_VIP}",
                 "-e", f"vrrp_vrid={DNS_VRID}", "-e", "lb_count=2", "-e", "web_count=2"]
    _cleanup_dirs.append(Path.home() / ".config/vrrp-lxd" / DNS_PREFIX.rstrip("-"))
    delete(lxc_names(DNS_PREFIX))
    r = ansible_playbook(ROOT / "playbooks/site.yml", topo_args, work / "dns-site.log", timeout=900)
    with _created_lock:
        _created.update(lxc_names(DNS_PREFIX))
    if r["rc"] != 0:
        raise RuntimeError(f"site.yml failed: {'; '.join(failed_tasks(r['log']))[:300]}")
    name = f"{DNS_PREFIX}web-01.{DNS_PREFIX.rstrip('-')}.vrrp.internal."
    res["name"] = name
    res["reps"] = []
    for rep in range(REPS):
        holder = vip_holders(lxc_names(DNS_PREFIX + "lb-"), DNS_VIP)
        if len(holder) != 1:
            raise RuntimeError(f"VIP holders: {holder}")
        holder = holder[0]
        one: dict = {"holder": holder}
        one["steady"] = queried(name, lambda: None, 5.0)
        one["planned"] = queried(name, lambda: lxc_exec(holder, "systemctl stop knot"), 2.0)
        one["planned_back"] = queried(
            name, lambda: (lxc_exec(holder, "systemctl start knot"), wait_vip_on(DNS_PREFIX, DNS_VIP, holder, 30)), 1.0)
        one["hard"] = queried(name, lambda: sh(["lxc", "stop", "-f", holder]), 3.0)
        sh(["lxc", "start", holder])
        wait_vip_on(DNS_PREFIX, DNS_VIP, holder, 120)
        log(f"dns {rep + 1}: p50 {one['steady']['p50_ms']} ms, p99 {one['steady']['p99_ms']} ms; "
            f"lost: planned {one['planned']['lost']}, back {one['planned_back']['lost']}, "
            f"hard {one['hard']['lost']} ({one['hard']['longest_outage_ms']:.0f} ms)")
        res["reps"].append(one)
    delete(lxc_names(DNS_PREFIX))


# ================================================================ tls

class HttpsProbe(Probe):
    """vrrp-probe's HTTPS mode: a GET over a new verified TLS connection each time."""

    def __init__(self, ip: str, ca: Path, name: str, interval_ms: int = 20, max_s: float = 120):
        self._start(ip, BRIDGE, [f"https://{ip}/", "--ca", str(ca), "--server-name", name,
                                 "--interval-ms", str(interval_ms), "--timeout-ms", "1000"], max_s)


def sequential_gets(ip: str, port: int, seconds: float, ca: Path | None = None, name: str = "") -> dict:
    """GETs one after another, a new connection (and TLS handshake, with `ca`)
    each, for `seconds`: how many a single client completes per second."""
    import ssl

    if not routed_via_bridge(ip):
        raise RuntimeError(f"{ip} is not routed via {BRIDGE}; refusing to send to it")
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    request = f"GET / HTTP/1.0\r\nHost: {name or ip}\r\nUser-Agent: vrrp-bench\r\n\r\n".encode()
    done = failed = 0
    end = time.monotonic() + min(seconds, 30)
    t0 = time.monotonic()
    while time.monotonic() < end:
        try:
            with socket.create_connection((ip, port), timeout=2) as raw:
                # With a CA: the certificate is verified for `name`, as a browser would.
                conn = ctx.wrap_socket(raw, server_hostname=name) if ctx else raw
                conn.sendall(request)
                head = conn.recv(64)
                ok = head.startswith(b"HTTP/1.") and head[9:10] in (b"2", b"3")
                while conn.recv(65536):
                    pass
        except OSError:
            ok = False
        done += ok
        failed += not ok
    secs = time.monotonic() - t0
    return {"requests": done + failed, "failed": failed, "seconds": secs, "per_second": done / secs}


def bench_tls(res: dict, work: Path) -> None:
    topo_args = ["-e", f"vrrp_prefix={TLS_PREFIX}", "-e", f"vrrp_vip={TLS_VIP}",
                 "-e", f"vrrp_vrid={TLS_VRID}", "-e", "lb_count=2", "-e", "web_count=2",
                 "-e", "vrrp_tls=true", "-e", "haproxy_tls_redirect_http=false"]
    creds = Path.home() / ".config/vrrp-lxd" / TLS_PREFIX.rstrip("-")
    _cleanup_dirs.append(creds)
    delete(lxc_names(TLS_PREFIX))
    r = ansible_playbook(ROOT / "playbooks/site.yml", topo_args, work / "tls-site.log", timeout=900)
    with _created_lock:
        _created.update(lxc_names(TLS_PREFIX))
    if r["rc"] != 0:
        raise RuntimeError(f"site.yml failed: {'; '.join(failed_tasks(r['log']))[:300]}")
    ca = creds / "ca.crt"
    name = f"www.{TLS_PREFIX.rstrip('-')}.vrrp.internal"
    wait_answering(TLS_VIP, 60, backends=2)
    res["reps"] = []
    for rep in range(REPS):
        one = {}
        p = HttpsProbe(TLS_VIP, ca, name)
        time.sleep(5.0)
        one["latency"] = p.stop()
        one["https_burst"] = sequential_gets(TLS_VIP, 443, 3.0, ca=ca, name=name)
        one["http_burst"] = sequential_gets(TLS_VIP, 80, 3.0)
        log(f"tls {rep + 1}: p50 {one['latency']['p50_ms']:.1f} ms, p99 {one['latency']['p99_ms']:.1f} ms, "
            f"failed {one['latency']['failed']}; one at a time: https {one['https_burst']['per_second']:.0f}/s, "
            f"http {one['http_burst']['per_second']:.0f}/s")
        res["reps"].append(one)
    delete(lxc_names(TLS_PREFIX))


# ================================================================ inventory

def bench_inventory(res: dict, work: Path) -> None:
    runs = os.environ.get("BENCH_INV_RUNS", str(max(3, 3 * REPS)))
    env = dict(os.environ)
    env["BENCH_INV_RUNS"] = runs
    env["LXD_INVENTORY_BIN"] = str(ROOT / "dist/bin/lxd_inventory")
    # A project of its own: inventory.sh run by hand at the same time uses bench-inv.
    env.setdefault("BENCH_INV_PROJECT", "bench-run-inv")
    # 50 more DHCP leases at once than the bridge may have free: wait for an
    # inventory.sh started by hand to finish first (up to 20 min).
    for _ in range(240):
        others = sh(["pgrep", "-f", "bench/inventory.sh"], check=False).stdout.split()
        if not others:
            break
        if _ == 0:
            log(f"inventory: waiting for another bench/inventory.sh (pid {' '.join(others)}) to finish")
        time.sleep(5)
    log(f"inventory: bench/inventory.sh ({runs} runs per command)")
    out_json = RESULTS / "inventory.json"
    before = out_json.stat().st_mtime if out_json.exists() else 0
    logf = work / "inventory.log"
    with open(logf, "w") as f:
        p = subprocess.run(["bash", str(BENCH / "inventory.sh")], cwd=ROOT, env=env,
                           stdout=f, stderr=subprocess.STDOUT, timeout=3600)
    if p.returncode != 0 or not out_json.exists() or out_json.stat().st_mtime <= before:
        raise RuntimeError(f"bench/inventory.sh failed (rc {p.returncode}), see {logf}:\n"
                           + logf.read_text()[-2000:])
    res.update(json.loads(out_json.read_text()))


# ================================================================ per-task cost

SITE_PORT0 = 8100


VHOST_J2 = """Listen {{ site_port }}
<VirtualHost *:{{ site_port }}>
    ServerName {{ site_name }}
    DocumentRoot {{ site_root }}
    SetEnvIf Request_Method OPTIONS healthcheck
    ErrorLog ${APACHE_LOG_DIR}/{{ site_name }}-error.log
    CustomLog ${APACHE_LOG_DIR}/{{ site_name }}-access.log combined env=!healthcheck
</VirtualHost>
"""

# The vhost checked in the context of the whole configuration before it is written.
VALIDATE = ("sh -c '. /etc/apache2/envvars && apache2 -t -f /etc/apache2/apache2.conf "
            "-c \"Include %s\"'")


def tasks_playbooks(n: int) -> dict[str, str]:
    """ours: one apache_site task per site (file, docroot, index, Listen, enable,
    configtest, reload). python_full: the same sites with the Python modules a user
    writes - docroot, index page, vhost (template + validate), enable link, one
    handler reload. python_template: the vhost alone (template + validate into
    sites-enabled + handler) - as many tasks as ours, each doing less."""
    head = ["  hosts: targets", "  gather_facts: false", "  tasks:"]
    handler = ["  handlers:", "    - name: Reload Apache", "      ansible.builtin.systemd_service:",
               "        name: apache2", "        state: reloaded"]
    ours = ["- name: Sites with apache_site"] + head
    full = ["- name: Sites with the Python modules"] + head
    tmpl = ["- name: Vhosts with template + validate"] + head
    for i in range(1, n + 1):
        site, port = f"site{i:02d}", SITE_PORT0 + i
        ours += [f"    - name: Site {site}",
                 "      ansible.legacy.apache_site:",
                 f"        name: {site}",
                 f"        port: {port}",
                 f"        index_content: \"{{{{ inventory_hostname }}}} {site}\\n\""]
        full += [f"    - name: Document root {site}",
                 "      ansible.builtin.file:",
                 f"        path: /var/www/{site}",
                 "        state: directory",
                 "        mode: \"0755\"",
                 f"    - name: Index page {site}",
                 "      ansible.builtin.copy:",
                 f"        dest: /var/www/{site}/index.html",
                 f"        content: \"{{{{ inventory_hostname }}}} {site}\\n\"",
                 "        mode: \"0644\"",
                 f"    - name: Vhost {site}",
                 "      ansible.builtin.template:",
                 "        src: vhost.conf.j2",
                 f"        dest: /etc/apache2/sites-available/{site}.conf",
                 "        mode: \"0644\"",
                 f"        validate: {json.dumps(VALIDATE)}",
                 f"      vars: {{site_name: {site}, site_port: {port}, site_root: /var/www/{site}}}",
                 "      notify: Reload Apache",
                 f"    - name: Enable {site}",
                 "      ansible.builtin.file:",
                 f"        src: ../sites-available/{site}.conf",
                 f"        dest: /etc/apache2/sites-enabled/{site}.conf",
                 "        state: link",
                 "      notify: Reload Apache"]
        tmpl += [f"    - name: Vhost {site}",
                 "      ansible.builtin.template:",
                 "        src: vhost.conf.j2",
                 f"        dest: /etc/apache2/sites-enabled/{site}.conf",
                 "        mode: \"0644\"",
                 f"        validate: {json.dumps(VALIDATE)}",
                 f"      vars: {{site_name: {site}, site_port: {port}, site_root: /var/www/html}}",
                 "      notify: Reload Apache"]
    # The protocol floor: tasks that do (almost) nothing, to compare what one task
    # costs in transport alone - a pipelined Python module against a binary module
    # (pushed, then run).
    noop = ["- name: Binary module, nothing to do"] + head
    ping = ["- name: Python module, pipelined, nothing to do"] + head
    for i in range(1, n + 1):
        noop += [f"    - name: No-op {i:02d}", "      ansible.legacy.apache_site:",
                 "        name: bench-absent", "        state: absent"]
        ping += [f"    - name: Ping {i:02d}", "      ansible.builtin.ping:"]
    empty = ["- name: Nothing (Ansible's start-up on the same hosts)", "  hosts: targets",
             "  gather_facts: false", "  tasks: []"]
    return {"ours": "\n".join(ours) + "\n", "python_full": "\n".join(full + handler) + "\n",
            "python_template": "\n".join(tmpl + handler) + "\n", "empty": "\n".join(empty) + "\n",
            "ours_noop": "\n".join(noop) + "\n", "python_ping": "\n".join(ping) + "\n"}


RESET_SITES = ("rm -f /etc/apache2/sites-enabled/site*.conf /etc/apache2/sites-available/site*.conf; "
               "rm -rf /var/www/site*; cp /root/ports.conf.orig /etc/apache2/ports.conf; "
               "ln -sfn ../sites-available/000-default.conf /etc/apache2/sites-enabled/000-default.conf; "
               "systemctl reload apache2")


def bench_tasks(res: dict, work: Path) -> None:
    hosts = [f"bench-task-{RUN_ID}-1", f"bench-task-{RUN_ID}-2"]
    log(f"tasks: launching {' '.join(hosts)}")
    launch_all(hosts)
    for h in hosts:
        lxc_exec(h, "cp /etc/apache2/ports.conf /root/ports.conf.orig && systemctl is-active apache2")
    inv = work / "tasks.ini"
    inv.write_text(lxd_inventory_ini({"targets": hosts}))
    cfg = bench_ansible_cfg(work)
    (work / "vhost.conf.j2").write_text(VHOST_J2)
    books = {}
    for k, text in tasks_playbooks(N_TASKS).items():
        books[k] = work / f"tasks-{k}.yml"
        books[k].write_text(text)
    env = {"ANSIBLE_CONFIG": str(cfg), "ANSIBLE_PIPELINING": "1"}
    variants = [v for v in os.environ.get(
        "BENCH_TASK_VARIANTS", "ours,python_full,python_template,ours_noop,python_ping").split(",") if v]
    res.update({"tasks_per_host": N_TASKS, "hosts": len(hosts), "pipelining": True,
                "module_runs_per_host": {"ours": N_TASKS, "python_full": 4 * N_TASKS + 1,
                                         "python_template": N_TASKS + 1, "ours_noop": N_TASKS,
                                         "python_ping": N_TASKS},
                "empty": [], **{v: {"converge": [], "rerun": []} for v in variants}})
    res["errors"] = []
    done = attempt = 0
    while done < REPS and attempt < REPS + MAX_RETRIES:
        try:
            tasks_rep(res, attempt, hosts, inv, books, env, variants, work)
            done += 1
        except Exception as e:  # noqa: BLE001 - recorded; the repetition is made again
            log(f"tasks attempt {attempt + 1}: FAILED: {e}")
            res["errors"].append(f"attempt {attempt + 1}: {e}")
        attempt += 1
    delete(hosts)
    if done == 0:
        raise RuntimeError("every repetition failed: " + "; ".join(res["errors"]))


def tasks_rep(res: dict, rep: int, hosts: list[str], inv: Path, books: dict, env: dict,
              variants: list[str], work: Path) -> None:
    # All-or-nothing per repetition, so the lists stay aligned with the empty play's.
    rows: dict = {v: {} for v in variants}
    r = ansible_playbook(books["empty"], ["-i", str(inv)], work / f"tasks-{rep}-empty.log",
                         cwd=work, env=env, timeout=300)
    if r["rc"] != 0:
        raise RuntimeError(f"empty play failed, see {r['log']}")
    empty = r["seconds"]
    # Alternate the order, so neither side always runs on a warmer cache.
    order = variants if rep % 2 == 0 else list(reversed(variants))
    for v in order:
        noop = v in ("ours_noop", "python_ping")
        if not noop:
            for h in hosts:
                lxc_exec(h, RESET_SITES)
        for phase in ("converge", "rerun"):
            r = ansible_playbook(books[v], ["-i", str(inv)], work / f"tasks-{rep}-{v}-{phase}.log",
                                 cwd=work, env=env, timeout=300)
            if r["rc"] != 0:
                raise RuntimeError(f"tasks {v} {phase} failed (rc {r['rc']}), see {r['log']}")
            rows[v][phase] = r
        # The sites answer: the work was really done.
        last = SITE_PORT0 + N_TASKS
        want = "Apache2 Debian Default Page" if v == "python_template" else f"site{N_TASKS:02d}"
        for h in ([] if noop else hosts):
            body = lxc_exec(h, f"curl -s --max-time 5 http://127.0.0.1:{last}/", check=False)
            if want not in body:
                raise RuntimeError(f"tasks {v}: port {last} on {h} answered {body[:200]!r}")
        log(f"tasks attempt {rep + 1} {v}: converge {rows[v]['converge']['seconds']:.1f} s "
            f"(changed {rows[v]['converge']['changed']}), re-run {rows[v]['rerun']['seconds']:.1f} s "
            f"(changed {rows[v]['rerun']['changed']})")
    log(f"tasks attempt {rep + 1}: empty play {empty:.1f} s")
    res["empty"].append(empty)
    for v in variants:
        for phase in ("converge", "rerun"):
            res[v][phase].append(rows[v][phase])


# ================================================================ sizes

CONTROLLER_MODULES = {"lxd_instance", "lxd_cluster_member"}


def bench_sizes(res: dict) -> None:
    for d in ("dist/library", "dist/bin"):
        for f in sorted((ROOT / d).iterdir()):
            if f.name == "vrrp-probe":  # the benchmark's own tool
                continue
            if f.is_file() and os.access(f, os.X_OK) and not f.name.endswith(".yml"):
                # lxd_instance runs on the controller (it talks to the LXD API over
                # HTTPS too): the 1 MiB goal is for the modules copied to targets.
                kind = ("controller" if d == "dist/bin" else
                        "controller module" if f.name in CONTROLLER_MODULES else "module")
                res[f.name] = {"bytes": f.stat().st_size, "kind": kind}


# ================================================================ hostloss

# The two-host test bed (scripts/multihost/up.sh, `make hosts-up`): two LXD hosts
# nested in system containers on the LAN bridge vrrplan0, reached over HTTPS.
MH_BRIDGE = os.environ.get("MH_BRIDGE", "vrrplan0")
MH_HOSTS_FILE = Path(os.environ.get("MH_ETC", "/etc/vrrp-lxd/multihost")) / "hosts.yml"
# On the LAN, outside its DHCP range (.100-.199) and the hosts' addresses (.11, .12):
# the end-to-end test uses .10 / VRID 140, the benchmark .56 / VRID 156.
MH_PREFIX, MH_VIP, MH_VRID = "bench-mh-", "10.232.0.56", 156
HOSTLOSS_TIMEOUT_MS = 100   # as the failover section's hard stop
PLANNED_TIMEOUT_MS = 500    # as its planned stop
HAPROXY_BACKEND = "web"     # roles/haproxy: haproxy_backend_name
ADMIN_SOCKET = "/run/haproxy/admin.sock"
# Health-check variants the host loss is measured with. default: the role's
# (haproxy_backend's defaults, inter 2s rise 2 fall 3); fast: role variables passed
# with -e (roles/haproxy: haproxy_health_check), the role defaults unchanged.
HOSTLOSS_VARIANTS = [v.strip() for v in os.environ.get("BENCH_HOSTLOSS_VARIANTS", "default,fast").split(",")
                     if v.strip()]
FAST_CHECK = {"method": "OPTIONS", "path": "/", "expect_status": 200,
              **json.loads(os.environ.get("BENCH_HOSTLOSS_FAST_CHECK",
                                          '{"interval": "200ms", "rise": 2, "fall": 3}'))}
HOSTLOSS_INV = os.environ.get("BENCH_HOSTLOSS_INV", "1") == "1"
INV_RUNS = int(os.environ.get("BENCH_HOSTLOSS_INV_RUNS", "15"))

# HAProxy's servers as `show stat` gives them, read inside a load balancer: once,
# or polled every 100 ms with the time of every change (see its docstring).
HAPROXY_STAT_PY = (ROOT / "testbed/guest/haproxy_stat.py").read_text()

# Inside the surviving load balancer while the lost host comes back: the time the
# VIP leaves it (preempted by the returning holder), `ip -4 -o addr` every 50 ms.
VIP_PY = r'''
import subprocess, sys, time
vip, limit = sys.argv[1], float(sys.argv[2])
end, had = time.time() + limit, None
print("ready %.6f" % time.time(), flush=True)
while time.time() < end:
    t = time.time()
    has = ("inet %s/" % vip) in subprocess.run(["ip", "-4", "-o", "addr", "show"],
                                               capture_output=True, text=True).stdout
    if has != had:
        print("vip %.6f %d" % (t, has), flush=True)
        had = has
        if not has:
            break
    time.sleep(max(0.0, 0.05 - (time.time() - t)))
print("end %.6f" % time.time(), flush=True)
'''

class TimelineProbe(threading.Thread):
    """The failover section's probe (dist/bin/vrrp-probe) in Python, keeping every
    request: a new connection per GET every 20 ms (or at once after a slow one, never
    in a burst), the request in one segment (TCP_NODELAY, HTTP/1.0), the timeout on
    the connect and on each read. Each record: wall-clock send time (the clock the
    load balancers' poller uses), outcome (ok, status NNN, timeout, refused, error),
    first line of the body (the web node's name)."""

    def __init__(self, ip: str, bridge: str, timeout_ms: int, max_s: float, interval_ms: int = 20,
                 port: int = 80):
        super().__init__(daemon=True)
        if not routed_via_bridge(ip, bridge):
            raise RuntimeError(f"{ip} is not routed via {bridge}; refusing to probe it")
        self.ip, self.port, self.bridge = ip, port, bridge
        self.timeout, self.interval, self.max_s = timeout_ms / 1000, interval_ms / 1000, min(max_s, 900)
        self.request = f"GET / HTTP/1.0\r\nHost: {ip}\r\nUser-Agent: vrrp-bench\r\n\r\n".encode()
        self.records: list[tuple[float, str, str]] = []
        self.halt = threading.Event()

    def once(self) -> tuple[str, str]:
        try:
            s = socket.create_connection((self.ip, self.port), timeout=self.timeout)
        except ConnectionRefusedError:
            return "refused", ""
        except TimeoutError:
            return "timeout", ""
        except OSError as e:
            return f"error {e.errno}", ""
        buf = b""
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(self.timeout)
            s.sendall(self.request)
            while len(buf) < 65536:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
        except TimeoutError:
            return "timeout", ""
        except OSError as e:
            return f"error {e.errno}", ""
        finally:
            s.close()
        text = buf.decode(errors="replace")
        parts = text.split(None, 2)
        if len(parts) < 2 or not parts[1].isdigit():
            return "error bad answer", ""
        status = int(parts[1])
        if not 200 <= status < 300:
            return f"status {status}", ""
        body = text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in text else ""
        first = next((ln.strip() for ln in body.splitlines() if ln.strip()), "")
        return "ok", first[:100]

    def run(self) -> None:
        start = time.monotonic()
        tick = 0
        while not self.halt.is_set() and time.monotonic() - start < self.max_s:
            sent = time.time()
            outcome, backend = self.once()
            self.records.append((sent, outcome, backend))
            tick += 1
            nxt = start + self.interval * tick
            now = time.monotonic()
            if nxt > now:
                time.sleep(nxt - now)
            else:
                tick = int((now - start) / self.interval) + 1

    def stop(self) -> list[tuple[float, str, str]]:
        self.halt.set()
        self.join(timeout=10)
        return list(self.records)

    def between(self, t0: float, t1: float = float("inf")) -> list[tuple[float, str, str]]:
        return [r for r in list(self.records) if t0 <= r[0] < t1]


def tl_run(recs: list, end: float, failed=lambda o: o != "ok") -> tuple[float, float | None, float | None]:
    """Longest run of `failed` requests: (ms, its first request's send time, the
    send time of the next request that is not one), counted as vrrp-probe counts an
    outage; a run still open at `end` ends there."""
    best: tuple[float, float | None, float | None] = (0.0, None, None)
    since = None
    for sent, outcome, _ in recs:
        if failed(outcome):
            since = since if since is not None else sent
        elif since is not None:
            if sent - since > best[0]:
                best = (sent - since, since, sent)
            since = None
    if since is not None and end - since > best[0]:
        best = (end - since, since, end)
    return best[0] * 1000, best[1], best[2]


def tl_longest(recs: list, end: float, failed=lambda o: o != "ok") -> float:
    return tl_run(recs, end, failed)[0]


def no_answer(outcome: str) -> bool:
    return outcome != "ok" and not outcome.startswith("status")


def first_clean_window(recs: list, webs: list[str], t0: float, secs: float = 1.0) -> float | None:
    """The first `secs` of requests after t0 with no failure that reached every one
    of `webs` (and nothing else): the send time of the request by which every web
    node had answered in it."""
    recs = [r for r in recs if r[0] >= t0]
    want = set(webs)
    for i, (t, outcome, _) in enumerate(recs):
        if outcome != "ok":
            continue
        seen, ok, complete = set(), True, None
        j = i
        while j < len(recs) and recs[j][0] < t + secs:
            if recs[j][1] != "ok":
                ok = False
                break
            seen.add(recs[j][2])
            if complete is None and seen == want:
                complete = recs[j][0]
            j += 1
        if ok and j < len(recs) and seen == want:
            return complete
    return None


class MhHost:
    """One LXD host of the test bed: its container here, its LXD inside."""

    def __init__(self, entry: dict):
        self.entry = entry
        self.name, self.url = entry["name"], entry["url"]
        self.addr = self.url.split("://", 1)[1].rsplit(":", 1)[0]

    def lxc(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        try:
            return sh(["lxc", "exec", self.name, "--", "lxc", *args], check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, "", "timed out")

    def exec(self, inst: str, cmd: list[str], check: bool = True, timeout: float = 60) -> str:
        p = self.lxc(["exec", inst, "--", *cmd], timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"{self.name}/{inst}: {' '.join(cmd)[:80]} failed (rc {p.returncode}): "
                               f"{p.stderr.strip()[:300]}")
        return p.stdout

    def running(self) -> bool:
        p = sh(["lxc", "list", self.name, "--format", "csv", "-c", "ns"], check=False)
        return f"{self.name},RUNNING" in p.stdout.split()

    def lxd_answers(self) -> bool:
        return self.lxc(["list", "--format", "csv", "-c", "n"], timeout=20).returncode == 0

    def instances(self, prefix: str) -> list[str]:
        p = self.lxc(["list", "--format", "csv", "-c", "n"], timeout=30)
        return [n for n in p.stdout.split() if n.startswith(prefix)] if p.returncode == 0 else []


def mh_hosts() -> list[MhHost]:
    import yaml
    doc = yaml.safe_load(MH_HOSTS_FILE.read_text())
    hosts = [MhHost(e) for e in doc.get("hosts", [])]
    if len(hosts) < 2:
        raise RuntimeError(f"{MH_HOSTS_FILE} lists {len(hosts)} host(s); the section needs two")
    for h in hosts:
        if not routed_via_bridge(h.addr, MH_BRIDGE):
            raise RuntimeError(f"{h.name}: {h.addr} is not routed via {MH_BRIDGE}")
    return hosts


class MarkPoller:
    """haproxy_stat.py --poll (or another script) inside a load balancer, its lines read as they come."""

    def __init__(self, host: MhHost, lb: str, watch: list[str], limit_s: float,
                 script: str = HAPROXY_STAT_PY, args: list[str] | None = None):
        args = args if args is not None else [ADMIN_SOCKET, HAPROXY_BACKEND, "--poll", str(limit_s), *watch]
        self.proc = subprocess.Popen(
            ["lxc", "exec", host.name, "--", "lxc", "exec", lb, "--", "python3", "-u", "-c", script, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _children.add(self.proc)
        self.lines: list[list[str]] = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "ready":
                self.ready.set()
            self.lines.append(parts)

    def first(self, server: str, pred) -> float | None:
        for p in list(self.lines):
            if p[0] == "state" and len(p) >= 4 and p[2] == server and pred(p[3]):
                return float(p[1])
        return None

    def done(self) -> bool:
        return self.proc.poll() is not None

    def finish(self, timeout: float = 30) -> list[list[str]]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        _children.discard(self.proc)
        return self.lines


class MhTopo:
    """The bench-mh-* topology (2 LB + 2 web) placed over the test bed's hosts by
    playbooks/site.yml, as tests/e2e_two_hosts.rs runs it."""

    def __init__(self, hosts: list[MhHost], work: Path):
        self.hosts = hosts
        self.by_name = {h.name: h for h in hosts}
        self.work = work
        self.inv_cfg = work / "hostloss-inventory.yml"
        self.inv_cfg.write_text(f"hosts_file: {MH_HOSTS_FILE}\nconnection: lxd_api\n")
        self.args = ["-e", f"vrrp_prefix={MH_PREFIX}", "-e", f"vrrp_vip={MH_VIP}",
                     "-e", f"vrrp_vrid={MH_VRID}", "-e", f"vrrp_hosts_file={MH_HOSTS_FILE}"]
        self.stopped: set[str] = set()   # hosts this section stopped (started again by clean-up)
        self.creds = Path.home() / ".config/vrrp-lxd" / MH_PREFIX.rstrip("-")

    def playbook(self, name: str, log_name: str, extra: list[str] | None = None, timeout: float = 900) -> dict:
        r = ansible_playbook(ROOT / "playbooks" / name, [*self.args, *(extra or [])],
                             self.work / f"hostloss-{log_name}.log",
                             env={"LXD_INVENTORY_CONFIG": str(self.inv_cfg)}, timeout=timeout)
        doc = _json_of_log(r["log"]) or {}
        r["per_host_changed"] = {h: s.get("changed", 0) for h, s in doc.get("stats", {}).items()}
        r["changed_tasks"] = changed_tasks(r["log"])
        if r["rc"] != 0:
            r["failed_tasks"] = failed_tasks(r["log"])
        return r

    def placement(self) -> dict[str, str]:
        return {n: h.name for h in self.hosts for n in h.instances(MH_PREFIX)}

    def host_of(self, inst: str, placement: dict | None = None) -> MhHost:
        return self.by_name[(placement or self.placement())[inst]]

    def lbs(self, placement: dict) -> list[str]:
        return sorted(n for n in placement if n.startswith(f"{MH_PREFIX}lb-"))

    def webs(self, placement: dict) -> list[str]:
        return sorted(n for n in placement if n.startswith(f"{MH_PREFIX}web-"))

    def holders(self, placement: dict | None = None) -> list[str]:
        placement = placement or self.placement()
        return vip_holders(self.lbs(placement), MH_VIP, lambda n: self.by_name[placement[n]].lxc(
            ["exec", n, "--", *IP_ADDRS], timeout=30).stdout)

    def wait_holders(self, want: list[str], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.holders() == want:
                return True
            time.sleep(0.3)
        return False

    def server_states(self, lb: str, placement: dict | None = None) -> dict[str, str]:
        out = self.host_of(lb, placement).exec(
            lb, ["python3", "-c", HAPROXY_STAT_PY, ADMIN_SOCKET, HAPROXY_BACKEND], check=False)
        return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)

    def wait_all_up(self, timeout: float = 90) -> None:
        """Every LB's HAProxy has every web node UP."""
        end = time.monotonic() + timeout
        last: dict = {}
        while time.monotonic() < end:
            pl = self.placement()
            webs = self.webs(pl)
            last = {lb: self.server_states(lb, pl) for lb in self.lbs(pl)}
            if webs and all(sorted(st) == webs and all(v == "UP" for v in st.values()) for st in last.values()):
                return
            time.sleep(0.5)
        raise RuntimeError(f"not every web node UP on every HAProxy within {timeout:.0f} s: {last}")

    def check_line(self, lb: str) -> str:
        cfg = self.host_of(lb).exec(lb, ["cat", "/etc/haproxy/haproxy.cfg"], check=False)
        return next((ln.strip() for ln in cfg.splitlines() if ln.strip().startswith("default-server")), "?")

    def wait_lxd(self, host: MhHost, timeout: float = 180) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if host.lxd_answers():
                return True
            time.sleep(0.5)
        return False

    def restart_stopped_hosts(self) -> None:
        for name in sorted(self.stopped):
            h = self.by_name[name]
            if not h.running():
                log(f"hostloss: starting {name} again")
                sh(["lxc", "start", name], check=False, timeout=300)
            if self.wait_lxd(h):
                self.stopped.discard(name)

    def delete_all(self, prefix: str = MH_PREFIX) -> None:
        for h in self.hosts:
            for n in h.instances(prefix):
                h.lxc(["delete", "-f", n], timeout=120)

    def cleanup(self, keep: bool) -> None:
        self.restart_stopped_hosts()   # the test bed stays up, KEEP=1 or not
        if keep:
            left = self.placement()
            if left:
                log(f"KEEP=1: leaving {' '.join(sorted(left))} on the test bed")
            return
        left = self.placement()
        if left:
            log(f"hostloss: deleting {len(left)} instances on the test bed")
        self.delete_all()
        shutil.rmtree(self.creds, ignore_errors=True)


def variant_args(variant: str) -> list[str]:
    if variant == "default":
        return []
    if variant == "fast":
        return ["-e", json.dumps({"haproxy_health_check": FAST_CHECK})]
    raise RuntimeError(f"unknown hostloss variant {variant!r} (default, fast)")


def bench_hostloss(res: dict, work: Path) -> None:
    if not MH_HOSTS_FILE.exists():
        msg = f"the two-host test bed is not up ({MH_HOSTS_FILE} missing): run `make hosts-up`"
        if "hostloss" in ONLY:
            raise RuntimeError(msg)
        log(f"hostloss: skipped, {msg}")
        res["skipped"] = msg
        return
    hosts = mh_hosts()
    for h in hosts:
        if not h.running() or not h.lxd_answers():
            raise RuntimeError(f"{h.name} is not running or its LXD does not answer: run `make hosts-up`")
    if not routed_via_bridge(MH_VIP, MH_BRIDGE):
        raise RuntimeError(f"{MH_VIP} is not routed via {MH_BRIDGE}")
    topo = MhTopo(hosts, work)
    _cleanup_hooks.append(topo.cleanup)
    res.update({"hosts": [h.name for h in hosts], "prefix": MH_PREFIX, "vip": MH_VIP, "vrid": MH_VRID,
                "bridge": MH_BRIDGE, "playbook_args": topo.args,
                "probe": {"interval_ms": 20, "timeout_ms": {"host_loss": HOSTLOSS_TIMEOUT_MS,
                                                            "planned_stop": PLANNED_TIMEOUT_MS}},
                "errors": [], "variants": {}, "planned_stop": []})
    others = {h.name: [n for n in h.instances("") if not n.startswith(MH_PREFIX)] for h in hosts}
    res["other_instances"] = others
    if any(others.values()):
        log(f"hostloss: warning: other instances on the test bed (they go down with their host): {others}")
    stale = topo.placement()
    if stale:
        log(f"hostloss: deleting leftovers of an earlier run: {' '.join(sorted(stale))}")
        topo.delete_all()

    # ---- deploy: lb-01 + web-01 on the first host, lb-02 + web-02 on the second
    log("hostloss: site.yml from nothing across the two hosts")
    r = topo.playbook("site.yml", "site")
    log(f"  rc {r['rc']} in {r['seconds']:.1f} s, changed {r['changed']}")
    res["site_from_nothing"] = r
    if r["rc"] != 0:
        raise RuntimeError(f"site.yml failed: {'; '.join(r.get('failed_tasks', []))[:400]}, see {r['log']}")
    pl = topo.placement()
    res["placement"] = pl
    h1, h2 = hosts[0].name, hosts[1].name
    want = {f"{MH_PREFIX}lb-01": h1, f"{MH_PREFIX}web-01": h1, f"{MH_PREFIX}lb-02": h2, f"{MH_PREFIX}web-02": h2}
    if pl != want:
        raise RuntimeError(f"placement {pl}, expected {want}")
    r = topo.playbook("site.yml", "site-rerun")
    log(f"  converged re-run: rc {r['rc']} in {r['seconds']:.1f} s, changed {r['changed']} {r['changed_tasks']}")
    res["site_rerun"] = r
    webs = topo.webs(pl)
    wait_answering(MH_VIP, 60, backends=len(webs), bridge=MH_BRIDGE)
    topo.wait_all_up()

    if HOSTLOSS_INV:
        try:
            res["inventory"] = inventory_timing(topo, work, {"two": "two_hosts_2_2", "one": "one_host_2"})
        except Exception as e:  # noqa: BLE001 - recorded; the rest still runs
            log(f"hostloss: inventory timing FAILED: {e}")
            res["errors"].append(f"inventory (2+2): {e}")

    # ---- planned stop of HAProxy on the VIP holder
    for rep in range(REPS):
        try:
            r = planned_stop_rep(topo)
            res["planned_stop"].append(r)
            log(f"hostloss planned stop {rep + 1}/{REPS}: {r['failed']} failed of {r['requests']}, "
                f"longest outage {r['longest_outage_ms']:.0f} ms")
        except Exception as e:  # noqa: BLE001 - recorded; the next repetition may still run
            log(f"hostloss planned stop {rep + 1}/{REPS}: FAILED: {e}")
            res["errors"].append(f"planned stop {rep + 1}: {e}")
            hostloss_recover(topo, [])

    # ---- whole host lost, per health-check variant
    for variant in HOSTLOSS_VARIANTS:
        extra = variant_args(variant)
        v: dict = {"args": extra, "reps": [], "errors": []}
        res["variants"][variant] = v
        t0 = time.monotonic()
        try:
            if extra:
                log(f"hostloss [{variant}]: site.yml {' '.join(extra)}")
                r = topo.playbook("site.yml", f"{variant}-apply", extra)
                log(f"  rc {r['rc']} in {r['seconds']:.1f} s, changed {r['changed']} {r['changed_tasks']}")
                v["apply"] = r
                if r["rc"] != 0:
                    raise RuntimeError(f"site.yml with {variant} failed, see {r['log']}")
                topo.wait_all_up()
            v["check"] = topo.check_line(f"{MH_PREFIX}lb-02")
            log(f"hostloss [{variant}]: HAProxy `{v['check']}`")
        except Exception as e:  # noqa: BLE001 - recorded; the next variant may still run
            log(f"hostloss [{variant}]: FAILED: {e}")
            v["errors"].append(str(e))
            continue
        done = attempt = 0
        while done < REPS and attempt < REPS + MAX_RETRIES:
            try:
                v["reps"].append(hostloss_rep(topo, variant, attempt, extra))
                done += 1
            except Exception as e:  # noqa: BLE001 - recorded; the repetition is made again
                log(f"hostloss [{variant}] attempt {attempt + 1}: FAILED: {e}")
                v["errors"].append(f"attempt {attempt + 1}: {e}")
                hostloss_recover(topo, extra)
            attempt += 1
        v["seconds"] = time.monotonic() - t0
        if done == 0:
            res["errors"].append(f"{variant}: every repetition failed")

    # ---- inventory: the same 4 instances on one host
    if HOSTLOSS_INV and not KEEP:
        topo.delete_all()
        try:
            inventory_one_host(topo, work, res.setdefault("inventory", {}))
        except Exception as e:  # noqa: BLE001
            log(f"hostloss: inventory timing (one host) FAILED: {e}")
            res["errors"].append(f"inventory (one host): {e}")
        topo.delete_all()
    topo.cleanup(KEEP)
    _cleanup_hooks.remove(topo.cleanup)
    if not any(v["reps"] for v in res["variants"].values()):
        raise RuntimeError("every host-loss repetition failed: " + "; ".join(
            e for v in res["variants"].values() for e in v["errors"]))


def hostloss_recover(topo: MhTopo, extra: list[str]) -> None:
    """After a failed repetition: every host running, the topology converged, the
    VIP on lb-01, every web node UP."""
    try:
        topo.restart_stopped_hosts()
        r = topo.playbook("site.yml", f"recover-{int(time.time())}", extra)
        if r["rc"] != 0:
            log(f"hostloss: recovery site.yml failed, see {r['log']}")
        topo.wait_holders([f"{MH_PREFIX}lb-01"], 60)
        topo.wait_all_up()
    except Exception as e:  # noqa: BLE001
        log(f"hostloss: recovery: {e}")


def planned_stop_rep(topo: MhTopo) -> dict:
    pl = topo.placement()
    holders = topo.holders(pl)
    if len(holders) != 1:
        raise RuntimeError(f"VIP holders: {holders}")
    holder = holders[0]
    other = [n for n in topo.lbs(pl) if n != holder][0]
    h = topo.host_of(holder, pl)
    probe = Probe(MH_VIP, timeout_ms=PLANNED_TIMEOUT_MS, max_s=120, bridge=MH_BRIDGE)
    time.sleep(1.0)
    h.exec(holder, ["systemctl", "stop", "haproxy"])
    t0 = time.monotonic()
    time.sleep(2.0)
    while topo.holders() != [other] and time.monotonic() - t0 < 30:
        time.sleep(0.3)
    moved = time.monotonic() - t0
    time.sleep(1.0)
    r = probe.stop()
    r.update({"holder": holder, "to": other, "from_host": pl[holder], "to_host": pl[other],
              "settled_s": moved})
    h.exec(holder, ["systemctl", "start", "haproxy"])
    if not topo.wait_holders([holder], 60):
        raise RuntimeError(f"VIP not back on {holder}: {topo.holders()}")
    topo.wait_all_up()
    time.sleep(2.0)
    if moved >= 30:
        raise RuntimeError(f"the VIP did not move to {other} within 30 s")
    return r


def hostloss_rep(topo: MhTopo, variant: str, attempt: int, extra: list[str]) -> dict:
    pl = topo.placement()
    holders = topo.holders(pl)
    if len(holders) != 1:
        raise RuntimeError(f"VIP holders: {holders}")
    holder = holders[0]
    lost = topo.host_of(holder, pl)
    survivor = next(n for n in topo.lbs(pl) if pl[n] != lost.name)
    surv_host = topo.host_of(survivor, pl)
    all_webs = topo.webs(pl)
    lost_webs = [n for n in all_webs if pl[n] == lost.name]
    kept_webs = [n for n in all_webs if pl[n] != lost.name]
    rec: dict = {"variant": variant, "holder": holder, "lost_host": lost.name, "survivor": survivor,
                 "lost_webs": lost_webs, "kept_webs": kept_webs}
    log(f"hostloss [{variant}] attempt {attempt + 1}: lxc stop -f {lost.name} (holds {holder}; "
        f"{survivor} and {' '.join(kept_webs)} stay)")

    poller = MarkPoller(surv_host, survivor, lost_webs, limit_s=60)
    if not poller.ready.wait(30):
        poller.finish(5)
        raise RuntimeError(f"the HAProxy poller on {survivor} did not start: {poller.proc.stderr.read()[:300]}")
    probe = TimelineProbe(MH_VIP, MH_BRIDGE, timeout_ms=HOSTLOSS_TIMEOUT_MS, max_s=900)
    probe.start()
    time.sleep(1.0)
    t_stop = time.time()
    topo.stopped.add(lost.name)
    sh(["lxc", "stop", "-f", lost.name], timeout=120)
    t_stopped = time.time()
    rec["stop_cmd_ms"] = (t_stopped - t_stop) * 1000

    # Until every web node of the lost host is DOWN on the survivor and the VIP
    # serves the others cleanly for 1 s (at most 60 s).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if poller.done() and first_clean_window(probe.records, kept_webs, t_stop) is not None \
                and time.time() - t_stop > 2:
            break
        time.sleep(0.2)
    lines = poller.finish(10)
    rec["poller"] = [" ".join(p) for p in lines][:200]
    marks = [poller.first(w, lambda s: s.startswith("DOWN")) for w in lost_webs]
    firsts = [poller.first(w, lambda s: s.startswith("UP_")) for w in lost_webs]
    t_mark = max(marks) if marks and None not in marks else None
    rec["mark_ms"] = (t_mark - t_stop) * 1000 if t_mark else None
    rec["first_failed_check_ms"] = (min(f for f in firsts if f) - t_stop) * 1000 if any(firsts) else None
    time.sleep(0.5)
    rec["holders_after_loss"] = topo.holders()

    # ---- the host comes back
    vipw = MarkPoller(surv_host, survivor, [], 0, script=VIP_PY, args=[MH_VIP, "150"])
    if not vipw.ready.wait(30):
        vipw.finish(5)
        raise RuntimeError(f"the VIP watcher on {survivor} did not start")
    t_start = time.time()
    sh(["lxc", "start", lost.name], timeout=300)
    if not topo.wait_lxd(lost, 180):
        raise RuntimeError(f"{lost.name}'s LXD did not answer within 180 s of its start")
    topo.stopped.discard(lost.name)
    t_lxd = time.time()
    rec["lxd_back_s"] = t_lxd - t_start

    loss = probe.between(t_stop, t_start)
    # The VIP's gap: the first run of failed requests after the stop (the LB and
    # its host's web node die together; before the survivor takes the VIP nothing
    # answers), to the first answer after it, which only the survivor can give.
    # Later single failures are requests the survivor still sends to the dead web
    # node (they time out) until HAProxy marks it DOWN.
    first_fail = next((r for r in loss if r[1] != "ok"), None)
    back = next((r for r in loss if first_fail and r[0] > first_fail[0] and r[1] == "ok"), None)
    rec["first_failure_after_stop_ms"] = (first_fail[0] - t_stop) * 1000 if first_fail else None
    rec["vip_window_ms"] = (back[0] - t_stop) * 1000 if back else None
    rec["vip_outage_ms"] = (back[0] - first_fail[0]) * 1000 if back else None
    rec["vip_outage_requests"] = sum(1 for r in loss if first_fail and back and first_fail[0] <= r[0] < back[0])
    rec["longest_no_answer_ms"] = tl_longest(loss, t_start, no_answer)
    rec["longest_outage_ms"] = tl_longest(loss, t_start)
    rec["loss_requests"] = len(loss)
    rec["loss_failed"] = sum(1 for r in loss if r[1] != "ok")
    rec["loss_failed_after_mark"] = sum(1 for r in loss if r[1] != "ok" and t_mark and r[0] >= t_mark) \
        if t_mark else None
    rec["loss_outcomes"] = _count(r[1] for r in loss)
    rec["loss_backends"] = _count(r[2] for r in loss if r[1] == "ok")
    log(f"  VIP outage {_ms(rec['vip_outage_ms'])} ({rec['vip_outage_requests']} requests; answered again "
        f"{_ms(rec['vip_window_ms'])} after the stop command), first failed check {_ms(rec['first_failed_check_ms'])}, "
        f"marked DOWN {_ms(rec['mark_ms'])}; failed {rec['loss_failed']} of {rec['loss_requests']}, "
        f"{rec['loss_failed_after_mark']} after the mark; holders now {rec['holders_after_loss']}")

    r = topo.playbook("site.yml", f"{variant}-{attempt}-return", extra)
    t_site = time.time()
    pl2 = topo.placement()
    staying = {n for n, hn in pl2.items() if hn != lost.name}
    returning = {n for n, hn in pl2.items() if hn == lost.name}

    def side(host: str) -> str:
        return "staying" if host in staying else "returning" if host in returning else "controller"

    rec["site"] = {k: r[k] for k in ("rc", "seconds", "changed", "per_host_changed", "changed_tasks", "log")}
    rec["site"]["finished_s"] = t_site - t_start
    rec["changed_staying"] = sum(c for h, c in r["per_host_changed"].items() if side(h) == "staying")
    rec["changed_returning"] = sum(c for h, c in r["per_host_changed"].items() if side(h) == "returning")
    rec["changed_controller"] = sum(c for h, c in r["per_host_changed"].items() if side(h) == "controller")
    if r["rc"] != 0:
        probe.stop()
        raise RuntimeError(f"site.yml after the return failed ({'; '.join(r.get('failed_tasks', []))[:300]}), "
                           f"see {r['log']}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first_clean_window(probe.records, all_webs, t_site) is None:
        time.sleep(0.2)
    if not topo.wait_holders([holder], 60):
        probe.stop()
        raise RuntimeError(f"the VIP did not come back to {holder}: {topo.holders()}")
    t_home = time.time()
    vip_lines = vipw.finish(10)
    left = next((float(p[1]) for p in vip_lines if p[0] == "vip" and p[2] == "0"), None)
    rec["vip_left_survivor_s"] = left - t_start if left else None
    topo.wait_all_up()
    time.sleep(1.5)
    probe.stop()
    t_end = time.time()
    ret = probe.between(t_start, t_end)
    t_all = first_clean_window(probe.records, all_webs, t_start)
    first_lost = next((r[0] for r in ret if r[1] == "ok" and r[2] in lost_webs), None)
    rec["all_served_s"] = t_all - t_start if t_all else None
    rec["first_lost_web_served_s"] = first_lost - t_start if first_lost else None
    rec["vip_home_s"] = t_home - t_start
    rec["return_requests"] = len(ret)
    rec["return_failed"] = sum(1 for r in ret if r[1] != "ok")
    rec["return_longest_outage_ms"] = tl_longest(ret, t_end)
    rec["return_outcomes"] = _count(r[1] for r in ret)
    rec["return_failures_s"] = [round(r[0] - t_start, 2) for r in ret if r[1] != "ok"][:100]
    rec["failures"] = [[round((r[0] - t_stop) * 1000), r[1]] for r in probe.records
                       if r[1] != "ok"][:500]
    log(f"  back: LXD {rec['lxd_back_s']:.1f} s, site.yml {r['seconds']:.1f} s (done at +{t_site - t_start:.1f} s, "
        f"changed: staying host {rec['changed_staying']}, returning host {rec['changed_returning']}, "
        f"controller {rec['changed_controller']}), every web node served at "
        f"+{_s(rec['all_served_s'])} (a lost one first at +{_s(rec['first_lost_web_served_s'])}), "
        f"VIP left {survivor} at +{_s(rec['vip_left_survivor_s'])}; {rec['return_failed']} failed of "
        f"{rec['return_requests']} {rec['return_failures_s'][:10]}")
    if t_all is None:
        raise RuntimeError("every web node was not served again within 120 s of site.yml")
    time.sleep(2.0)
    return rec


def _count(items) -> dict:
    out: dict = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


def _ms(v) -> str:
    return "n/a" if v is None else f"{v:.0f} ms"


def _s(v) -> str:
    return "n/a" if v is None else f"{v:.1f} s"


def _inventory_configs(topo: MhTopo, work: Path) -> dict[str, Path]:
    import yaml
    doc = yaml.safe_load(MH_HOSTS_FILE.read_text())
    one = work / "hosts-one.yml"
    one.write_text(yaml.safe_dump({"hosts": doc["hosts"][:1]}))
    cfgs = {"two": topo.inv_cfg, "one": work / "inventory-one.yml"}
    cfgs["one"].write_text(f"hosts_file: {one}\nconnection: lxd_api\n")
    return cfgs


def inventory_timing(topo: MhTopo, work: Path, names: dict[str, str]) -> dict:
    """`lxd_inventory --list` and `ansible-inventory --list` with the two-host
    config (two) and one with the first host alone (one), interleaved (one run of
    each in turn, so both see the same load): INV_RUNS timed runs each after one
    warm-up. `names` maps the config to the key of its figures."""
    cfgs = _inventory_configs(topo, work)
    env = dict(os.environ)
    env.update(PYTHON_ENV)
    for k in [k for k in env if k.startswith("LXD_INVENTORY_")]:
        del env[k]
    cmds = {"lxd_inventory": [str(ROOT / "dist/bin/lxd_inventory"), "--list"],
            "ansible_inventory": [str(VENV / "bin/ansible-inventory"), "-i", str(ROOT / "dist/bin/lxd_inventory"),
                                  "--list"]}
    out: dict = {key: {"config": which} for which, key in names.items()}
    times: dict = {(w, c): [] for w in names for c in cmds}
    for i in range(INV_RUNS + 1):
        for c, cmd in cmds.items():
            for which, key in names.items():
                t0 = time.monotonic()
                p = subprocess.run(cmd, cwd=ROOT, env={**env, "LXD_INVENTORY_CONFIG": str(cfgs[which])},
                                   capture_output=True, text=True, timeout=120)
                dt_ = time.monotonic() - t0
                if p.returncode != 0:
                    raise RuntimeError(f"{' '.join(cmd)} ({which}) failed: {p.stderr[-300:]}")
                if i:
                    times[(which, c)].append(dt_)
                hv = json.loads(p.stdout).get("_meta", {}).get("hostvars", {})
                out[key][f"{c}_instances"] = len(hv)
                out[key]["per_host"] = _count(v.get("lxd_host", "?") for v in hv.values())
    for which, key in names.items():
        for c in cmds:
            out[key][c] = mmm(times[(which, c)])
        log(f"hostloss: inventory {key} ({out[key]['per_host']}): lxd_inventory "
            f"{out[key]['lxd_inventory']['median']:.3f} s, ansible-inventory "
            f"{out[key]['ansible_inventory']['median']:.3f} s (medians of {INV_RUNS})")
    return out


def inventory_one_host(topo: MhTopo, work: Path, inv: dict) -> None:
    """4 instances on the first host: listed through a config with that host alone,
    and through the two-host config (4 + 0), against 2 + 2 above."""
    h = topo.hosts[0]
    names = [f"{MH_PREFIX}inv-{i}" for i in range(1, 5)]
    profiles = [a for p in h.entry.get("profiles", ["default"]) for a in ("-p", p)]
    image = h.entry.get("image", IMAGE)
    log(f"hostloss: launching {' '.join(names)} on {h.name} for the one-host inventory")

    def one(n: str) -> None:
        p = h.lxc(["launch", image, n, *profiles, "-q"], timeout=300)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.strip()[:200])

    side_by_side(names, one)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        p = h.lxc(["list", "--format", "csv", "-c", "n4"], timeout=30)
        rows = [ln for ln in p.stdout.splitlines() if ln.split(",")[0] in names]
        if len(rows) == len(names) and all("(eth0)" in ln for ln in rows):
            break
        time.sleep(1)
    for n in names:   # booted, so the listing sees them as the topology's are seen
        h.lxc(["exec", n, "--", "sh", "-c", "timeout 120 systemctl is-system-running --wait >/dev/null 2>&1 || true"],
              timeout=150)
    inv.update(inventory_timing(topo, work, {"one": "one_host_4", "two": "two_hosts_4_0"}))


# ================================================================ main

# ================================================================ cluster

# The cluster test bed (`make cluster-up`: cl-host-1..3 on vrrpcl0, one LXD
# cluster). Raised here when it is not up, and then taken down at the end
# (KEEP=1 leaves it).
CL_ETC = Path(os.environ.get("BENCH_CLUSTER_ETC", "/etc/vrrp-lxd/cluster"))
CL_HOSTS_FILE = CL_ETC / "hosts.yml"
CL_BRIDGE = os.environ.get("BENCH_CLUSTER_BRIDGE", "vrrpcl0")
CL_HOSTS = os.environ.get("BENCH_CLUSTER_HOSTS", "cl-host-1 cl-host-2 cl-host-3").split()
# The end-to-end test uses .10 / VRID 140 on this LAN; the benchmark .56 / 156.
CL_PREFIX, CL_VIP, CL_VRID = "bench-cl-", "10.233.0.56", 156
CL_MODE = os.environ.get("BENCH_CLUSTER_MODE", "migrate")
CL_PARTS = set(os.environ.get("BENCH_CLUSTER_PARTS", "inventory,evacuation").split(","))


def _cl_lxc(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """The cluster's lxc, run in its first member (the endpoint's)."""
    try:
        return sh(["lxc", "exec", CL_HOSTS[0], "--", "lxc", *args], check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", "timed out")


def cluster_bed_up() -> bool:
    if not CL_HOSTS_FILE.exists():
        return False
    running = sh(["lxc", "list", "--format", "csv", "-c", "ns"], check=False).stdout.split()
    return all(f"{h},RUNNING" in running for h in CL_HOSTS) and _cl_lxc(["cluster", "list"], 30).returncode == 0


def _cl_placement() -> dict[str, tuple[str, str]]:
    """bench-cl-* instance -> (member, status)."""
    p = _cl_lxc(["list", "--format", "csv", "-c", "nLs"], 60)
    rows = [ln.split(",") for ln in p.stdout.splitlines()]
    return {r[0]: (r[1], r[2]) for r in rows if len(r) >= 3 and r[0].startswith(CL_PREFIX)}


def _cl_members() -> dict[str, str]:
    p = _cl_lxc(["query", "/1.0/cluster/members?recursion=1"], 30)
    return {m["server_name"]: m["status"] for m in json.loads(p.stdout or "[]")}


def _cl_holders(pl: dict) -> list[str]:
    lbs = sorted(n for n in pl if n.startswith(f"{CL_PREFIX}lb-"))
    return vip_holders(lbs, CL_VIP, lambda n: _cl_lxc(["exec", n, "--", *IP_ADDRS], 30).stdout)


def _cl_delete_topology() -> None:
    for n in _cl_placement():
        _cl_lxc(["delete", "-f", n], 120)


def bench_cluster(res: dict, work: Path) -> None:
    raised = False
    if not cluster_bed_up():
        log("cluster: the cluster test bed is not up; raising it (MH_CLUSTER=1 scripts/multihost/up.sh)")
        with open(work / "cluster-up.log", "w") as f:
            p = subprocess.run(["bash", str(ROOT / "scripts/multihost/up.sh")], cwd=ROOT, stdout=f,
                               stderr=subprocess.STDOUT, env={**os.environ, "MH_CLUSTER": "1"}, timeout=1800)
        if p.returncode != 0 or not cluster_bed_up():
            raise RuntimeError(f"scripts/multihost/up.sh failed (rc {p.returncode}), see {work / 'cluster-up.log'}")
        raised = True
    res.update({"hosts_file": str(CL_HOSTS_FILE), "raised_bed": raised, "errors": []})

    def down(keep: bool) -> None:
        if keep:
            log("KEEP=1: leaving the cluster test bed and its bench-cl-* instances")
            return
        _cl_delete_topology()
        if raised:
            log("cluster: taking the test bed down (it was raised here)")
            subprocess.run(["bash", str(ROOT / "scripts/multihost/down.sh")], cwd=ROOT,
                           env={**os.environ, "MH_CLUSTER": "1"}, capture_output=True, timeout=900)
    _cleanup_hooks.append(down)
    try:
        try:
            if "inventory" in CL_PARTS:
                cluster_inventory(res, work)
        except Exception as e:  # noqa: BLE001 - recorded; the evacuation still runs
            log(f"cluster: inventory FAILED: {e}")
            res["errors"].append(f"inventory: {e}")
        try:
            if "evacuation" in CL_PARTS:
                res["evacuation"] = cluster_evacuation(work)
        except Exception as e:  # noqa: BLE001
            log(f"cluster: evacuation FAILED: {e}")
            res["errors"].append(f"evacuation: {e}")
    finally:
        _cleanup_hooks.remove(down)
        down(KEEP)
    if res["errors"]:
        raise RuntimeError("; ".join(res["errors"]))


def cluster_inventory(res: dict, work: Path) -> None:
    """bench/inventory.sh against the cluster's endpoint: 50 tiny instances over
    the members, in a project of their own."""
    runs = os.environ.get("BENCH_INV_RUNS", str(max(3, 3 * REPS)))
    out_json = RESULTS / "inventory-cluster.json"
    before = out_json.stat().st_mtime if out_json.exists() else 0
    env = {**os.environ, "BENCH_INV_RUNS": runs, "BENCH_INV_HOSTS_FILE": str(CL_HOSTS_FILE),
           "BENCH_INV_PROJECT": "bench-cl-inv", "BENCH_INV_OUT": str(out_json),
           "LXD_INVENTORY_BIN": str(ROOT / "dist/bin/lxd_inventory")}
    log(f"cluster: bench/inventory.sh against {CL_HOSTS_FILE} ({runs} rounds)")
    logf = work / "cluster-inventory.log"
    with open(logf, "w") as f:
        p = subprocess.run(["bash", str(BENCH / "inventory.sh")], cwd=ROOT, env=env,
                           stdout=f, stderr=subprocess.STDOUT, timeout=3600)
    if p.returncode != 0 or not out_json.exists() or out_json.stat().st_mtime <= before:
        raise RuntimeError(f"bench/inventory.sh failed (rc {p.returncode}), see {logf}:\n" + logf.read_text()[-1500:])
    res["inventory"] = json.loads(out_json.read_text())
    for r in res["inventory"]["results"]:
        log(f"  {r['what']}: {r['min_s']:.3f} / {r['median_s']:.3f} / {r['max_s']:.3f} s")


def cluster_evacuation(work: Path) -> dict:
    """2 LB + 2 web over the members; evacuate_host.yml (vrrp_evacuate_mode=CL_MODE)
    on the VIP holder's member under the probe, then restore_host.yml."""
    if not routed_via_bridge(CL_VIP, CL_BRIDGE):
        raise RuntimeError(f"{CL_VIP} is not routed via {CL_BRIDGE}")
    inv_cfg = work / "cluster-inventory.yml"
    inv_cfg.write_text(f"hosts_file: {CL_HOSTS_FILE}\nconnection: lxd_api\n")
    args = ["-e", f"vrrp_prefix={CL_PREFIX}", "-e", f"vrrp_vip={CL_VIP}", "-e", f"vrrp_vrid={CL_VRID}",
            "-e", f"vrrp_hosts_file={CL_HOSTS_FILE}"]
    out: dict = {"mode": CL_MODE, "vip": CL_VIP, "prefix": CL_PREFIX}

    def play(name: str, tag: str, extra: list[str]) -> dict:
        r = ansible_playbook(ROOT / "playbooks" / name, [*args, *extra], work / f"cluster-{tag}.log",
                             env={"LXD_INVENTORY_CONFIG": str(inv_cfg)}, timeout=1200)
        r["changed_tasks"] = changed_tasks(r["log"])
        if r["rc"] != 0:
            r["failed_tasks"] = failed_tasks(r["log"])
        r["member_task"] = next((dict(res_) for t, h, res_ in _task_results(r["log"])
                                 if t.startswith(("Evacuate it", "Restore it"))), None)
        return r

    if _cl_placement():
        log("cluster: deleting bench-cl-* left by an earlier run")
        _cl_delete_topology()
    log("cluster: site.yml, 2 LB + 2 web over the members")
    r = play("site.yml", "site", ["-e", "lb_count=2", "-e", "web_count=2"])
    out["site"] = {k: r[k] for k in ("rc", "seconds")}
    if r["rc"] != 0:
        raise RuntimeError(f"site.yml failed: {r.get('failed_tasks')}")
    wait_answering(CL_VIP, 90, backends=2, bridge=CL_BRIDGE)
    pl = _cl_placement()
    holders = _cl_holders(pl)
    if len(holders) != 1:
        raise RuntimeError(f"VIP holders: {holders}")
    member = pl[holders[0]][0]
    out.update({"placement_before": pl, "holder": holders[0], "member": member})
    log(f"cluster: evacuate_host.yml -e host={member} -e vrrp_evacuate_mode={CL_MODE} ({holders[0]} holds the VIP)")

    probe = Probe(CL_VIP, timeout_ms=500, max_s=900, bridge=CL_BRIDGE)
    time.sleep(1.0)
    r = play("evacuate_host.yml", "evacuate", ["-e", f"host={member}", "-e", f"vrrp_evacuate_mode={CL_MODE}"])
    time.sleep(float(os.environ.get("BENCH_CLUSTER_SETTLE_S", "15")))
    rep = probe.stop()
    pl_after = _cl_placement()
    moved = sorted(n for n, (m, _) in pl.items() if m == member and pl_after.get(n, ("", ""))[0] != member)
    out["evacuate"] = {**{k: r.get(k) for k in ("rc", "seconds", "failed_tasks", "member_task")},
                       "probe": {k: rep.get(k) for k in ("ok", "failed", "longest_outage_ms", "backends")},
                       "placement_after": pl_after, "moved": moved, "members": _cl_members(),
                       "holders_after": _cl_holders(pl_after)}
    mt = r.get("member_task") or {}
    log(f"  rc {r['rc']} in {r['seconds']:.1f} s (LXD {mt.get('seconds')} s); probe {rep['ok']} ok, "
        f"{rep['failed']} failed; moved {moved or 'nothing'}; placement {pl_after}")
    if r["rc"] != 0:
        raise RuntimeError(f"evacuate_host.yml failed: {r.get('failed_tasks')}")

    log(f"cluster: restore_host.yml -e host={member}")
    probe = Probe(CL_VIP, timeout_ms=500, max_s=900, bridge=CL_BRIDGE)
    time.sleep(1.0)
    r = play("restore_host.yml", "restore", ["-e", f"host={member}"])
    time.sleep(5.0)
    rep = probe.stop()
    pl_back = _cl_placement()
    out["restore"] = {**{k: r.get(k) for k in ("rc", "seconds", "failed_tasks", "member_task")},
                      "probe": {k: rep.get(k) for k in ("ok", "failed", "longest_outage_ms", "backends")},
                      "placement_after": pl_back, "members": _cl_members(), "holders_after": _cl_holders(pl_back)}
    mt = r.get("member_task") or {}
    log(f"  rc {r['rc']} in {r['seconds']:.1f} s (LXD {mt.get('seconds')} s); probe {rep['ok']} ok, "
        f"{rep['failed']} failed; placement {pl_back}")
    if r["rc"] != 0:
        raise RuntimeError(f"restore_host.yml failed: {r.get('failed_tasks')}")
    return out


def main() -> int:
    sections = ["failover", "growth", "dns", "tls", "inventory", "tasks", "hostloss", "cluster", "soak", "scale",
                "sizes"]
    wanted = [s for s in sections if not ONLY or s in ONLY]
    now = dt.datetime.now(dt.timezone.utc)
    stamp = now.strftime("%Y-%m-%d")
    if ONLY:  # a partial run does not replace the day's full results
        stamp += "-" + "-".join(wanted)
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vrrp-bench-"))
    log(f"benchmarks: {', '.join(wanted)}; {REPS} repetitions; logs in {work}")
    load = LoadSampler()
    load.start()
    results: dict = {"date": now.isoformat(timespec="seconds"), "reps": REPS, "host": platform.node(),
                     "cpus": os.cpu_count(), "kernel": platform.release(), "sections": wanted,
                     "errors": {}}
    if TOPO_PREFIX:
        stale = lxc_names(TOPO_PREFIX) if "growth" in wanted else []
        if stale:
            log(f"deleting leftovers of an earlier run: {' '.join(stale)}")
            for n in stale:
                sh(["lxc", "delete", "-f", n], check=False)
    t_start = time.monotonic()
    for s in wanted:
        res: dict = {}
        results[s] = res
        t0 = time.monotonic()
        try:
            if s == "failover":
                bench_failover(res, work)
            elif s == "growth":
                bench_growth(res, work)
            elif s == "dns":
                bench_dns(res, work)
            elif s == "tls":
                bench_tls(res, work)
            elif s == "inventory":
                bench_inventory(res, work)
            elif s == "tasks":
                bench_tasks(res, work)
            elif s == "hostloss":
                bench_hostloss(res, work)
            elif s == "cluster":
                bench_cluster(res, work)
            elif s == "soak":
                sys.path.insert(0, str(BENCH))
                import soak  # noqa: E402 - next to this file
                soak.bench_soak(res, work, sys.modules[__name__])
            elif s == "scale":
                sys.path.insert(0, str(BENCH))
                import scale  # noqa: E402 - next to this file
                scale.bench_scale(res, work, sys.modules[__name__])
            elif s == "sizes":
                bench_sizes(res)
        except Exception as e:  # noqa: BLE001 - recorded; the other sections still run
            log(f"{s}: FAILED: {e}")
            results["errors"][s] = str(e)
            cleanup()
        res["section_seconds"] = time.monotonic() - t0
    load.halt.set()
    results["load"] = load.summary()
    results["total_seconds"] = time.monotonic() - t_start
    results["logs"] = str(work)

    sys.path.insert(0, str(BENCH))
    import report  # noqa: E402 - next to this file

    json_path = RESULTS / f"{stamp}.json"
    md_path = RESULTS / f"{stamp}.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    import report_hostloss  # noqa: E402 - next to this file

    import report_dns  # noqa: E402 - next to this file

    import report_soak  # noqa: E402 - next to this file

    import report_scale  # noqa: E402 - next to this file

    import report_cluster  # noqa: E402 - next to this file

    table = report_cluster.merge(report_scale.merge(
        report_soak.merge(report_hostloss.merge(report_dns.merge(report.markdown(results), results), results),
                          results), results), results)
    if results.get("scale", {}).get("sizes"):
        report_scale.chart(results["scale"], RESULTS / f"{now.strftime('%Y-%m-%d')}-scale.png")
    md_path.write_text(table)
    print()
    print(table)
    png = RESULTS / f"{stamp}.png"
    if not {"failover", "inventory"} & set(wanted):  # the chart shows those two alone
        log(f"written: {md_path}, {json_path}")
        return 1 if results["errors"] else 0
    p = subprocess.run([sys.executable, str(BENCH / "plot.py"), str(json_path), str(png)],
                       capture_output=True, text=True)
    if p.returncode == 0 and not ONLY:
        shutil.copy(png, ROOT / "docs/performance.png")
        log(f"chart: {png} (copied to docs/performance.png)")
    elif p.returncode == 0:
        log(f"chart: {png}")
    else:
        log(f"chart failed: {p.stderr.strip()}")
    log(f"written: {md_path}, {json_path}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
