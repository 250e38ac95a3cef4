"""The `soak` section of bench/run.py (also `make soak`): a steady open-loop load
through the VIP while a schedule fixed by a seed breaks and heals the topology.

A 2 LB + 2 web topology of its own (`bench-soak-`, VIP 10.231.0.58, VRID 158) is
brought up with playbooks/site.yml. `vrrp-probe --rate` sends BENCH_SOAK_RATE
requests a second (default 50, every 5th a POST, 1 s timeout), on schedule
whether or not earlier ones answered, for BENCH_SOAK_MIN minutes. Every 20-40 s
(random.Random(BENCH_SOAK_SEED)) one event, then its heal; the kinds are dealt
from a shuffled deck, so a run of 7 events or more meets each:

  haproxy_kill   `kill -9` of HAProxy's main process on the VIP holder; systemd
                 restarts it (haproxy.service has Restart=always)
  haproxy_stop   `systemctl stop haproxy` on the holder, 5 s later `systemctl start`
  lb_stop_f      `lxc stop -f` of the holder, 3 s later `lxc start`
  apache_kill    `kill -9` of every apache2 process on a web node; systemd restarts
                 it (apache2.service has Restart=on-abort, and SIGKILL counts)
  apache_stop    `systemctl stop apache2` on a web node, 5 s later `systemctl start`
  add_web        playbooks/add_web.yml (remove_web.yml instead when 3 web nodes run)
  remove_web     playbooks/remove_web.yml (add_web.yml instead at 2 web nodes)

Every event is healed (VIP back on lb-01, the unit active, web count 2-3) before
the next. VIP moves come from keepalived's own journal on each LB
(`Entering MASTER STATE`, read after the run with `journalctl --since`; the
journal is on disk, so `lxc stop -f` does not lose it): a move that no LB event's
window (its start to its heal + 3 s) holds is unexplained. Variants: quiet, and
loaded (BENCH_SOAK_BURNERS busy loops on the host, 4 by default, each under
`timeout`, killed at the end). BENCH_SOAK_HARD_REPS (3) events of one kind
(BENCH_SOAK_REPEAT_KIND, `lb_stop_f`: the hard-stop window) back to back under the
same load follow. With
BENCH_SOAK_ADVERT=0.1,0.05 the whole set runs once per advert_int
(`-e keepalived_advert_int=...`); BENCH_SOAK_EXTRA adds playbook options
(`-e keepalived_nopreempt=true`).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

SOAK_PREFIX, SOAK_VIP, SOAK_VRID = "bench-soak-", "10.231.0.58", 158
MINUTES = float(os.environ.get("BENCH_SOAK_MIN", "2.5"))
RATE = float(os.environ.get("BENCH_SOAK_RATE", "50"))
POST_EVERY = int(os.environ.get("BENCH_SOAK_POST_EVERY", "5"))
TIMEOUT_MS = int(os.environ.get("BENCH_SOAK_TIMEOUT_MS", "1000"))
SEED = int(os.environ.get("BENCH_SOAK_SEED", "1"))
VARIANTS = [v.strip() for v in os.environ.get("BENCH_SOAK_VARIANTS", "quiet,loaded").split(",") if v.strip()]
BURNERS = int(os.environ.get("BENCH_SOAK_BURNERS", "4"))
HARD_REPS = int(os.environ.get("BENCH_SOAK_HARD_REPS", "3"))
REPEAT_KIND = os.environ.get("BENCH_SOAK_REPEAT_KIND", "lb_stop_f")
ADVERTS = [a.strip() for a in os.environ.get("BENCH_SOAK_ADVERT", "").split(",") if a.strip()]
EXTRA = os.environ.get("BENCH_SOAK_EXTRA", "").split()
GAP_S = (20.0, 40.0)
ALL_KINDS = ["haproxy_kill", "haproxy_stop", "lb_stop_f", "apache_kill", "apache_stop", "add_web", "remove_web"]
KINDS = [k.strip() for k in os.environ.get("BENCH_SOAK_KINDS", ",".join(ALL_KINDS)).split(",") if k.strip()]
LB_KINDS = {"haproxy_kill", "haproxy_stop", "lb_stop_f"}
# After its heal, an event still owns what follows for this long (a preempting
# node's move back, HAProxy's checks catching up).
EXPLAIN_AFTER_S = 3.0


class SoakProbe:
    """vrrp-probe in open-loop mode, stopped through its stop file."""

    def __init__(self, R, ip: str, max_s: float):
        if not R.routed_via_bridge(ip):
            raise RuntimeError(f"{ip} is not routed via {R.BRIDGE}; refusing to probe it")
        import tempfile
        self.R = R
        self.dir = Path(tempfile.mkdtemp(prefix="bench-soak-probe-"))
        self.stop_file = self.dir / "stop"
        self.proc = subprocess.Popen(
            [str(R.PROBE), f"http://{ip}/", "--rate", str(RATE), "--post-every", str(POST_EVERY),
             "--timeout-ms", str(TIMEOUT_MS), "--duration-s", str(min(max_s, 900)),
             "--stop-file", str(self.stop_file)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        R._children.add(self.proc)

    def stop(self) -> dict:
        import json
        import shutil
        self.stop_file.touch()
        out, err = self.proc.communicate(timeout=60)
        self.R._children.discard(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.proc.returncode != 0:
            raise RuntimeError(f"vrrp-probe failed: {err.strip()}")
        return json.loads(out)


class Burners:
    """CPU busy loops on the host, each bounded by `timeout`, killed by stop()."""

    def __init__(self, R, n: int, seconds: float):
        self.R = R
        self.procs = [subprocess.Popen(["timeout", str(int(seconds)), "sh", "-c", "while :; do :; done"],
                                       process_group=0) for _ in range(n)]
        for p in self.procs:
            R._children.add(p)

    def stop(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)
            self.R._children.discard(p)


class Topo:
    def __init__(self, R, work: Path, extra: list[str]):
        self.R, self.work = R, work
        self.args = ["-e", f"vrrp_prefix={SOAK_PREFIX}", "-e", f"vrrp_vip={SOAK_VIP}",
                     "-e", f"vrrp_vrid={SOAK_VRID}", "-e", "lb_count=2", "-e", "web_count=2", *extra]
        self.runs = 0
        self.nopreempt = "keepalived_nopreempt=true" in extra

    def playbook(self, name: str, timeout: float = 900) -> dict:
        R = self.R
        self.runs += 1
        r = R.ansible_playbook(R.ROOT / "playbooks" / name, self.args,
                               self.work / f"soak-{self.runs:03d}-{name}.log", timeout=timeout)
        with R._created_lock:
            R._created.update(R.lxc_names(SOAK_PREFIX))
        if r["rc"] != 0:
            r["failed_tasks"] = R.failed_tasks(r["log"])
        return r

    def lbs(self) -> list[str]:
        return sorted(self.R.lxc_names(SOAK_PREFIX + "lb-"))

    def webs(self) -> list[str]:
        return sorted(self.R.lxc_names(SOAK_PREFIX + "web-"))

    def holder(self, timeout: float = 10) -> str | None:
        """The one LB holding the VIP; asked again for a while, since an `lxc exec`
        on a loaded host now and then returns nothing."""
        end = time.monotonic() + timeout
        while True:
            h = self.R.vip_holders(self.lbs(), SOAK_VIP)
            if len(h) == 1 or time.monotonic() > end:
                return h[0] if len(h) == 1 else None
            time.sleep(0.3)

    def wait_home(self, timeout: float) -> bool:
        """The VIP on lb-01 alone (on any one LB with nopreempt), HAProxy active on
        every LB."""
        home = self.lbs()[0]
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            holders = self.R.vip_holders(self.lbs(), SOAK_VIP)
            if (holders == [home] or (self.nopreempt and len(holders) == 1)) \
                    and all(self.active(lb, "haproxy") for lb in self.lbs()):
                return True
            time.sleep(0.3)
        return False

    def active(self, inst: str, unit: str) -> bool:
        try:
            p = self.R.sh(["lxc", "exec", inst, "--", "systemctl", "is-active", unit], check=False, timeout=30)
        except subprocess.TimeoutExpired:  # an exec LXD left hanging on a loaded host: ask again
            return False
        return p.stdout.strip() == "active"

    def wait_active(self, inst: str, unit: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.active(inst, unit):
                return True
            time.sleep(0.3)
        return False

    def memory(self) -> dict:
        """RSS (KiB) of haproxy and keepalived on each LB, all processes summed."""
        out = {}
        for lb in self.lbs():
            text = self.R.lxc_exec(lb, "for p in haproxy keepalived; do echo $p $(ps -C $p -o rss= | "
                                       "awk '{s+=$1} END {print s+0}'); done", check=False, timeout=30)
            out[lb] = {k: int(v) for k, v in (ln.split() for ln in text.splitlines() if len(ln.split()) == 2)}
        return out

    def advert_int(self) -> str:
        text = self.R.lxc_exec(self.lbs()[0], "grep -h advert_int /etc/keepalived/keepalived.conf", check=False)
        return " ".join(text.split()[1:2])

    def vrrp_log(self, since: float, until: float) -> list[tuple[float, str, str]]:
        """keepalived's state changes on every LB: (time, LB, state)."""
        out = []
        for lb in self.lbs():
            text = self.R.lxc_exec(lb, f"journalctl -u keepalived -o short-unix --no-pager "
                                       f"--since @{int(since)} --until @{int(until) + 2}", check=False, timeout=60)
            for ln in text.splitlines():
                m = re.match(r"(\d+\.\d+) \S+ Keepalived_vrrp\[\d+\]: \(\S+\) Entering (\w+) STATE", ln)
                if m and since <= float(m.group(1)) <= until:
                    out.append((float(m.group(1)), lb, m.group(2)))
        return sorted(out)


def kill_and_restart(topo: Topo, ev: dict, target: str, unit: str, kill: str) -> None:
    """A crash: `kill` on `target`, then systemd's restart of `unit` (started by
    hand, and noted, if systemd has not within 15 s)."""
    topo.R.lxc_exec(target, kill, timeout=30)
    if not topo.wait_active(target, unit, 15):
        ev["note"] = "not restarted by systemd within 15 s; started"
        topo.R.lxc_exec(target, f"systemctl start {unit}", check=False, timeout=60)


def stop_and_start(topo: Topo, ev: dict, target: str, unit: str) -> None:
    """A planned stop of `unit` on `target`, and its start 5 s later."""
    topo.R.lxc_exec(target, f"systemctl stop {unit}", timeout=60)
    time.sleep(5)
    ev["restart"] = time.time()
    topo.R.lxc_exec(target, f"systemctl start {unit}", timeout=60)


def run_event(topo: Topo, kind: str, rnd: random.Random) -> dict:
    R = topo.R
    ev: dict = {"kind": kind, "start": time.time()}
    try:
        if kind in LB_KINDS:
            holder = topo.holder()
            if holder is None:
                ev["skipped"] = True
                raise RuntimeError(f"no single VIP holder: {topo.R.vip_holders(topo.lbs(), SOAK_VIP)}")
            ev["target"] = holder
            ev["fired"] = time.time()
            if kind == "haproxy_kill":
                kill_and_restart(topo, ev, holder, "haproxy", "kill -9 $(systemctl show -p MainPID --value haproxy)")
            elif kind == "haproxy_stop":
                stop_and_start(topo, ev, holder, "haproxy")
            else:
                R.sh(["lxc", "stop", "-f", holder], timeout=60)
                time.sleep(3)
                ev["restart"] = time.time()
                R.sh(["lxc", "start", holder], timeout=120)
            if not topo.wait_home(120):
                raise RuntimeError(f"VIP not back on {topo.lbs()[0]} within 120 s")
        elif kind in ("apache_kill", "apache_stop"):
            web = rnd.choice(topo.webs())
            ev["target"] = web
            ev["fired"] = time.time()
            if kind == "apache_kill":
                kill_and_restart(topo, ev, web, "apache2", "pkill -9 -x apache2")
            else:
                stop_and_start(topo, ev, web, "apache2")
            if not topo.wait_active(web, "apache2", 30):
                raise RuntimeError(f"apache2 on {web} not active")
        else:
            r = topo.playbook(f"{kind}.yml", timeout=600)
            ev["playbook_seconds"] = round(r["seconds"], 1)
            if r["rc"] != 0:
                raise RuntimeError(f"{kind}.yml failed: {'; '.join(r.get('failed_tasks', []))[:300] or r.get('killed')}")
    except Exception as e:  # noqa: BLE001 - recorded; the soak goes on
        ev["error"] = str(e)[:400]
        R.log(f"  soak: {kind}: {e}")
    ev["healed"] = time.time()
    return ev


def pick_kind(topo: Topo, rnd: random.Random, kinds: list[str], deck: list[str]) -> str:
    """The next kind from a shuffled deck of all kinds (dealt again when empty), so
    that even a short run meets every kind once."""
    if not deck:
        deck.extend(rnd.sample(kinds, len(kinds)))
    kind = deck.pop(0)
    n = len(topo.webs())
    if kind == "add_web" and n >= 3:
        return "remove_web"
    if kind == "remove_web" and n <= 2:
        return "add_web"
    return kind


def soak_run(R, topo: Topo, label: str, seconds: float, seed: int, loaded: bool,
             kinds: list[str], gap: tuple[float, float] = GAP_S, count: int | None = None) -> dict:
    rnd = random.Random(seed)
    res: dict = {"label": label, "seconds": seconds, "seed": seed, "loaded": loaded, "kinds": kinds,
                 "burners": BURNERS if loaded else 0, "advert_int": topo.advert_int(),
                 "load_start": os.getloadavg()}
    if not topo.wait_home(60):
        raise RuntimeError("VIP not on lb-01 before the run")
    R.wait_answering(SOAK_VIP, 60)
    res["memory_start"] = topo.memory()
    res["holder_start"] = topo.holder()
    burners = Burners(R, BURNERS, seconds + 300) if loaded else None
    loads: list[float] = []
    events: list[dict] = []
    deck: list[str] = []
    try:
        probe = SoakProbe(R, SOAK_VIP, seconds + 600)
        t0 = time.time()
        end = t0 + seconds
        next_at = t0 + rnd.uniform(*gap) if count is None else t0 + 3
        while (count is None and next_at < end - 10) or (count is not None and len(events) < count):
            while time.time() < next_at:
                time.sleep(min(1.0, max(0.0, next_at - time.time())))
                loads.append(os.getloadavg()[0])
            kind = pick_kind(topo, rnd, kinds, deck)
            ev = run_event(topo, kind, rnd)
            events.append(ev)
            R.log(f"  soak {label}: {kind} on {ev.get('target', '-')} healed in "
                  f"{ev['healed'] - ev['start']:.1f} s{' ERROR ' + ev['error'] if 'error' in ev else ''}")
            next_at = max(ev["start"] + rnd.uniform(*gap), ev["healed"] + 3)
        while count is None and time.time() < end:
            time.sleep(min(1.0, max(0.0, end - time.time())))
            loads.append(os.getloadavg()[0])
        if count is not None:
            time.sleep(2)
        report = probe.stop()
    finally:
        if burners:
            burners.stop()
    t_end = time.time()
    res["load_end"] = os.getloadavg()
    res["load1"] = R.mmm(loads)
    res["memory_end"] = topo.memory()
    res["events"] = events
    res["vrrp_log"] = topo.vrrp_log(t0 - 1, t_end)
    res["probe"] = {k: v for k, v in report.items() if k != "failures"}
    res["failures"] = report.get("failures", [])
    analyse(res, report, t0)
    return res


def analyse(res: dict, report: dict, t0: float) -> None:
    """Failures and outages by the event whose window holds them; VIP moves that no
    LB event explains."""
    base = report["started_unix"]
    events = res["events"]
    wins = []
    for i, ev in enumerate(events):
        until = events[i + 1]["start"] if i + 1 < len(events) else float("inf")
        wins.append((ev["start"] - 0.5, until, ev))
    per: dict = {}

    def bucket(t: float) -> dict:
        kind = next((ev["kind"] for a, b, ev in wins if a <= t < b), "none")
        return per.setdefault(kind, {"events": 0, "failed_get": 0, "failed_post": 0,
                                     "longest_outage_ms": 0.0, "errors": {}})

    for ev in events:
        if not ev.get("skipped"):
            bucket(ev["start"])["events"] += 1
    for f in report.get("failures", []):
        b = bucket(base + f["t_ms"] / 1000)
        b["failed_post" if f["method"] == "POST" else "failed_get"] += 1
        b["errors"][f["error"]] = b["errors"].get(f["error"], 0) + 1
    for o in report.get("outages", []):
        b = bucket(base + o["start_ms"] / 1000)
        b["longest_outage_ms"] = max(b["longest_outage_ms"], o["end_ms"] - o["start_ms"])
    for ev in events:
        fails = [f for f in report.get("failures", [])
                 if ev["start"] - 0.5 <= base + f["t_ms"] / 1000 <= ev["healed"] + EXPLAIN_AFTER_S]
        ev["failed_get"] = sum(f["method"] == "GET" for f in fails)
        ev["failed_post"] = sum(f["method"] == "POST" for f in fails)
        if "restart" in ev:
            ev["failed_after_restart"] = sum(base + f["t_ms"] / 1000 >= ev["restart"] for f in fails)
        ev["windows_ms"] = [o["end_ms"] - o["start_ms"] for o in report.get("outages", [])
                            if ev["start"] - 0.5 <= base + o["start_ms"] / 1000 <= ev["healed"] + EXPLAIN_AFTER_S]
    res["by_kind"] = per
    # A move: an LB enters MASTER while another one is MASTER (both send
    # gratuitous ARP: the traffic follows the last), or after another one was.
    moves = []
    masters = {res["holder_start"]} if res.get("holder_start") else set()
    last = res.get("holder_start")
    for t, lb, state in res["vrrp_log"]:
        if state != "MASTER":
            masters.discard(lb)
            continue
        if lb not in masters and (masters or (last is not None and lb != last)):
            moves.append({"t": t, "to": lb, "while_master": sorted(masters)})
        masters.add(lb)
        last = lb
    unexplained = []
    for m in moves:
        ev = next((ev for ev in events if ev["kind"] in LB_KINDS and not ev.get("skipped")
                   and ev.get("fired", ev["start"]) - 0.5 <= m["t"] <= ev["healed"] + EXPLAIN_AFTER_S), None)
        m["event"] = ev["kind"] if ev else None
        if ev is None:
            unexplained.append({"t_s": round(m["t"] - t0, 2), "to": m["to"], "while_master": m["while_master"]})
    res["vip_moves"] = len(moves)
    res["vip_move_list"] = [{"t_s": round(m["t"] - t0, 2), "to": m["to"], "event": m["event"]} for m in moves]
    res["vip_moves_unexplained"] = unexplained
    res["vrrp_states"] = {s: sum(1 for _, _, st in res["vrrp_log"] if st == s)
                          for s in ("MASTER", "BACKUP", "FAULT")}


def bench_soak(res: dict, work: Path, R) -> None:
    if not R.routed_via_bridge(SOAK_VIP):
        raise RuntimeError(f"{SOAK_VIP} is not routed via {R.BRIDGE}")
    creds = Path.home() / ".config/vrrp-lxd" / SOAK_PREFIX.rstrip("-")
    R._cleanup_dirs.append(creds)
    res["runs"] = []
    res["settings"] = {"minutes": MINUTES, "rate": RATE, "post_every": POST_EVERY, "timeout_ms": TIMEOUT_MS,
                       "seed": SEED, "variants": VARIANTS, "burners": BURNERS, "hard_reps": HARD_REPS,
                       "extra": EXTRA, "kinds": KINDS}
    if os.environ.get("BENCH_SOAK_REUSE") != "1":
        R.delete(R.lxc_names(SOAK_PREFIX))
    for advert in ADVERTS or [""]:
        extra = [*EXTRA, *(["-e", f"keepalived_advert_int={advert}"] if advert else [])]
        topo = Topo(R, work, extra)
        R.log(f"soak: site.yml {' '.join(topo.args)}")
        r = topo.playbook("site.yml")
        if r["rc"] != 0:
            raise RuntimeError(f"site.yml failed: {'; '.join(r.get('failed_tasks', []))[:300]}")
        # Back to two web nodes after an earlier set ended with three.
        while len(topo.webs()) > 2:
            topo.playbook("remove_web.yml", timeout=600)
        R.wait_answering(SOAK_VIP, 90, backends=2)
        R.log(f"soak: advert_int {topo.advert_int()}")
        for variant in VARIANTS:
            loaded = variant == "loaded"
            R.log(f"soak: {variant}, {MINUTES} min at {RATE:.0f}/s, seed {SEED}")
            one = soak_run(R, topo, variant, MINUTES * 60, SEED, loaded, KINDS)
            one["advert"] = advert or "default"
            res["runs"].append(one)
            log_run(R, one)
        if HARD_REPS:
            R.log(f"soak: {HARD_REPS} x {REPEAT_KIND} back to back under the load")
            one = soak_run(R, topo, f"repeat-{REPEAT_KIND}", 0, SEED, False, [REPEAT_KIND], gap=(0, 0),
                           count=HARD_REPS)
            one["advert"] = advert or "default"
            res["runs"].append(one)
            log_run(R, one)
    if not R.KEEP:
        R.delete(R.lxc_names(SOAK_PREFIX))


def log_run(R, one: dict) -> None:
    p = one["probe"]
    R.log(f"soak {one['label']} (advert_int {one['advert_int']}): {p['requests']} requests, "
          f"failed GET {p['get']['failed']} POST {p['post']['failed']}, errors {p['errors']}, "
          f"VIP moves {one['vip_moves']} (unexplained {len(one['vip_moves_unexplained'])}), "
          f"late {p['late_skipped']}, load {one['load1']}")
    for kind, b in sorted(one["by_kind"].items()):
        R.log(f"    {kind}: {b['events']} events, failed GET {b['failed_get']} POST {b['failed_post']}, "
              f"longest {b['longest_outage_ms']:.0f} ms {b['errors']}")
