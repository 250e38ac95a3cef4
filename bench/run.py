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
sizes      module binaries in dist/library.

Every instance is named bench-* and deleted at the end (KEEP=1 keeps them).
Probes only go to VIPs on the project's bridge, bounded in time.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import platform
import shutil
import signal
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

REPS = max(1, int(os.environ.get("BENCH_REPS", "5")))
ONLY = {s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",") if s.strip()}
KEEP = os.environ.get("KEEP") == "1"
N_TASKS = int(os.environ.get("BENCH_TASKS", "20"))

# Address plan (see the project's allocations): bench owns .50-.59 / VRID 150-159.
OURS_VIP, OURS_VRID = "10.231.0.50", 150
SEED_VIP, SEED_VRID = "10.231.0.51", 151
TOPO_PREFIX, TOPO_VIP, TOPO_VRID = "bench-topo-", "10.231.0.55", 155

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


def cleanup() -> None:
    for p in list(_children):
        if p.poll() is None:
            p.kill()
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


def ipv4(name: str) -> str | None:
    p = sh(["lxc", "query", f"/1.0/instances/{name}/state"], check=False)
    try:
        state = json.loads(p.stdout)
        for a in state["network"]["eth0"]["addresses"]:
            if a["family"] == "inet" and a["scope"] == "global":
                return a["address"]
    except (ValueError, KeyError, TypeError):
        pass
    return None


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


def launch_all(names: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    errors: list[str] = []

    def one(n: str) -> None:
        try:
            out[n] = launch(n)
        except Exception as e:  # noqa: BLE001 - reported below, after every launch ended
            errors.append(f"{n}: {e}")

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("; ".join(errors))
    return out


def delete(names: list[str]) -> None:
    if KEEP:
        return
    for n in names:
        sh(["lxc", "delete", "-f", n], check=False)
        with _created_lock:
            _created.discard(n)


def routed_via_bridge(ip: str) -> bool:
    p = sh(["ip", "route", "get", ip], check=False)
    return f"dev {BRIDGE}" in p.stdout


# ---------------------------------------------------------------- probe

class Probe:
    """dist/bin/vrrp-probe in the background, stopped through its stop file."""

    def __init__(self, ip: str, timeout_ms: int = 500, max_s: float = 600, port: int = 80):
        if not routed_via_bridge(ip):
            raise RuntimeError(f"{ip} is not routed via {BRIDGE}; refusing to probe it")
        self.dir = Path(tempfile.mkdtemp(prefix="bench-probe-"))
        self.stop_file = self.dir / "stop"
        self.proc = subprocess.Popen(
            [str(PROBE), f"http://{ip}:{port}/", "--interval-ms", "20", "--timeout-ms", str(timeout_ms),
             "--duration-s", str(max_s), "--stop-file", str(self.stop_file)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _children.add(self.proc)

    def stop(self) -> dict:
        self.stop_file.touch()
        out, err = self.proc.communicate(timeout=60)
        _children.discard(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.proc.returncode != 0:
            raise RuntimeError(f"vrrp-probe failed: {err.strip()}")
        return json.loads(out)


def sample(ip: str, seconds: float, timeout_ms: int = 500) -> dict:
    p = Probe(ip, timeout_ms=timeout_ms, max_s=seconds + 5)
    time.sleep(seconds)
    return p.stop()


def wait_answering(ip: str, timeout: float, backends: int = 1) -> dict:
    """Probes in 1 s rounds until a round has no failure and >= `backends` backends."""
    start = time.monotonic()
    while True:
        r = sample(ip, 1.0)
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

HAPROXY_CFG = """global
    log /dev/log local0
    stats socket /run/haproxy/admin.sock mode 660 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend www
    bind *:80
    http-request return status 200 content-type text/plain string "{{ inventory_hostname }}"
"""

# The seed's keepalived.conf, as it was written by hand: VRRP v2 (keepalived's
# default), advert 1 s, a polled `killall -0 haproxy` every 2 s adding 2 to the
# priority while HAProxy runs, priorities 101 (MASTER) / 100 (BACKUP).
SEED_KEEPALIVED = """vrrp_script chk_haproxy {
    script "killall -0 haproxy"
    interval 2
    weight 2
}

vrrp_instance VI_1 {
    interface eth0
    state {{ 'MASTER' if seed_priority == 101 else 'BACKUP' }}
    virtual_router_id %(vrid)d
    priority {{ seed_priority }}
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass bench%(vrid)d
    }
    virtual_ipaddress {
        %(vip)s
    }
    track_script {
        chk_haproxy
    }
}
""" % {"vrid": SEED_VRID, "vip": SEED_VIP}

FAILOVER_PLAYBOOK = """
- name: HAProxy answering by itself on every load balancer
  hosts: all
  gather_facts: false
  tasks:
    - name: Apache off (HAProxy takes port 80)
      ansible.builtin.systemd_service:
        name: apache2
        state: stopped
        enabled: false
    - name: HAProxy answers with the host name
      ansible.builtin.copy:
        dest: /etc/haproxy/haproxy.cfg
        content: |
%(haproxy)s
        mode: "0644"
        validate: haproxy -c -q -f %%s
      register: haproxy_cfg
    - name: HAProxy (re)started with it
      ansible.builtin.systemd_service:
        name: haproxy
        state: restarted
        enabled: true
      when: haproxy_cfg.changed

- name: Ours - keepalived_vrrp with its defaults (VRRP v3, advert 0.1 s, HAProxy tracked)
  hosts: ours
  gather_facts: false
  tasks:
    - name: The VIP
      ansible.legacy.keepalived_vrrp:
        name: VI_bench
        virtual_router_id: %(ours_vrid)d
        priority: "{{ ours_priority }}"
        virtual_ipaddress: ["%(ours_vip)s/24"]

- name: Seed - keepalived.conf written by hand
  hosts: seed
  gather_facts: false
  tasks:
    - name: The seed's keepalived.conf
      ansible.builtin.copy:
        dest: /etc/keepalived/keepalived.conf
        content: |
%(seed)s
        mode: "0644"
      register: seed_conf
    - name: keepalived (re)started with it
      ansible.builtin.systemd_service:
        name: keepalived
        state: restarted
        enabled: true
      when: seed_conf.changed
"""


def indent(text: str, n: int) -> str:
    return "\n".join((" " * n + line) if line else "" for line in text.splitlines())


class Pair:
    def __init__(self, label: str, nodes: list[str], vip: str):
        self.label, self.nodes, self.vip = label, nodes, vip

    def holders(self) -> list[str]:
        out = []
        for n in self.nodes:
            p = sh(["lxc", "exec", n, "--", "ip", "-4", "-o", "addr", "show"], check=False, timeout=60)
            if f"inet {self.vip}/" in p.stdout:
                out.append(n)
        return out

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
    hv = work / "host_vars"
    hv.mkdir(exist_ok=True)
    for n, prio in zip(ours, (150, 100)):
        (hv / f"{n}.yml").write_text(f"ours_priority: {prio}\n")
    for n, prio in zip(seed, (101, 100)):
        (hv / f"{n}.yml").write_text(f"seed_priority: {prio}\n")
    pb = work / "failover.yml"
    pb.write_text(FAILOVER_PLAYBOOK % {
        "haproxy": indent(HAPROXY_CFG, 10), "seed": indent(SEED_KEEPALIVED, 10),
        "ours_vrid": OURS_VRID, "ours_vip": OURS_VIP})
    cfg = bench_ansible_cfg(work)
    run = ansible_playbook(pb, ["-i", str(inv)], work / "failover-setup.log", cwd=work,
                           env={"ANSIBLE_CONFIG": str(cfg)})
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

CONTROLLER_MODULES = {"lxd_instance"}


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


# ================================================================ main

def main() -> int:
    sections = ["failover", "growth", "inventory", "tasks", "sizes"]
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
            elif s == "inventory":
                bench_inventory(res, work)
            elif s == "tasks":
                bench_tasks(res, work)
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
    table = report.markdown(results)
    md_path.write_text(table)
    print()
    print(table)
    png = RESULTS / f"{stamp}.png"
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
