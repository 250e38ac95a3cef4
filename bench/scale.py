"""The cost of size (BENCH_ONLY=scale): launch to IPv4 of instances of the
base image made one after the other, then the topology made from nothing at
growing numbers of web nodes, its converged re-run, one add_web.yml under the
probe, and memory per instance; then the largest size shrunk back to 2 + 2
under the probe.

Sizes: BENCH_SCALE_SIZES (web nodes, default 2,8,16,30), 2 load balancers, the
largest with BENCH_SCALE_LBS (default 3). One run per size: a size takes
minutes, and the figures to read are how the times grow. Each re-run keeps
its per-task profile (from the JSON callback's start and end of every task on
every host): where a converged run spends its time.

Run by bench/run.py; `python bench/report_scale.py <json>` prints the table
and draws the chart again.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import shutil
import socket
import statistics
import time
from pathlib import Path

SCALE_PREFIX, SCALE_VIP, SCALE_VRID = "bench-scale-", "10.231.0.59", 159
SIZES = [int(s) for s in os.environ.get("BENCH_SCALE_SIZES", "2,8,16,30").split(",") if s.strip()]
LBS_AT_LARGEST = int(os.environ.get("BENCH_SCALE_LBS", "3"))
# The first launch is reported apart, so at least two.
LAUNCHES = max(2, int(os.environ.get("BENCH_SCALE_LAUNCHES", "6")))
LXD_SOCKET = os.environ.get("BENCH_LXD_SOCKET", "/var/lib/lxd/unix.socket")


class _LxdSocket(http.client.HTTPConnection):
    def __init__(self) -> None:
        super().__init__("lxd", timeout=10)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(LXD_SOCKET)


def _global_ipv4(R, name: str) -> str | None:
    """eth0's global IPv4 as LXD reports it: one request on the local socket,
    so that polling costs no CLI start."""
    c = _LxdSocket()
    try:
        c.request("GET", f"/1.0/instances/{name}/state")
        state = (json.loads(c.getresponse().read()).get("metadata") or {})
    finally:
        c.close()
    return R.eth0_ipv4(state)


def launch_to_ipv4(R) -> dict:
    """LAUNCHES instances of the base image one after the other, each timed
    from `lxc launch` until LXD reports a global IPv4 on eth0, and left to
    finish booting before the next starts (so none competes with another's
    boot). The first is reported apart: on a new pool it unpacks the image."""
    names = [f"{SCALE_PREFIX}launch-{i}" for i in range(1, LAUNCHES + 1)]
    R.delete(R.lxc_names(SCALE_PREFIX + "launch-"))
    rows = []
    try:
        for n in names:
            with R._created_lock:
                R._created.add(n)
            start = time.monotonic()
            R.sh(["lxc", "launch", R.IMAGE, n, "-p", R.PROFILE, "-q"], timeout=600)
            launched = time.monotonic() - start
            while not _global_ipv4(R, n):
                if time.monotonic() - start > 120:
                    raise RuntimeError(f"{n}: no IPv4 on eth0 within 120 s")
                # LXD enters the container to answer: often enough to time
                # a boot to the tens of milliseconds, not so often that the
                # polling competes with the boot for the CPU.
                time.sleep(0.05)
            rows.append({"launch_s": round(launched, 3), "ipv4_s": round(time.monotonic() - start, 3)})
            R.wait_booted(n)
    finally:
        R.delete(names)
    later = [r["ipv4_s"] for r in rows[1:]]
    return {"first": rows[0], "later": rows[1:], "min": min(later), "median": statistics.median(later),
            "max": max(later), "load": list(os.getloadavg())}


def _time(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def task_profile(R, log_path: str, most: int = 12) -> list[dict]:
    """The tasks of a run by wall time, longest first: from the first host's
    start to the last host's end, and on how many hosts it ran."""
    doc = R._json_of_log(log_path) or {}
    out = []
    for play in doc.get("plays", []):
        for task in play.get("tasks", []):
            d = task["task"].get("duration") or {}
            if not d.get("start") or not d.get("end"):
                continue
            out.append({"task": task["task"]["name"], "seconds": round(_time(d["end"]) - _time(d["start"]), 2),
                        "hosts": len(task.get("hosts", {}))})
    return sorted(out, key=lambda t: -t["seconds"])[:most]


def memory_mib(R) -> dict:
    """Memory in use per instance (LXD's cgroup figure), by tier: min, median, max."""
    p = R.sh(["lxc", "list", SCALE_PREFIX, "--format", "json"], timeout=120)
    tiers: dict[str, list[float]] = {}
    for inst in json.loads(p.stdout):
        usage = ((inst.get("state") or {}).get("memory") or {}).get("usage") or 0
        tier = "lb" if inst["name"].startswith(SCALE_PREFIX + "lb-") else "web"
        tiers.setdefault(tier, []).append(usage / 2**20)
    return {t: {"n": len(v), "min": round(min(v), 1), "median": round(sorted(v)[len(v) // 2], 1),
                "max": round(max(v), 1)} for t, v in tiers.items()}


def bench_scale(res: dict, work: Path, R) -> None:
    if not R.routed_via_bridge(SCALE_VIP):
        raise RuntimeError(f"{SCALE_VIP} is not routed via {R.BRIDGE}")
    args = ["-e", f"vrrp_prefix={SCALE_PREFIX}", "-e", f"vrrp_vip={SCALE_VIP}", "-e", f"vrrp_vrid={SCALE_VRID}"]
    creds = Path.home() / ".config/vrrp-lxd" / SCALE_PREFIX.rstrip("-")
    R._cleanup_dirs.append(creds)
    res["sizes"] = []
    res["load_start"] = list(os.getloadavg())
    R.log(f"scale: launch to IPv4, {LAUNCHES} instances one after the other")
    res["launch"] = launch_to_ipv4(R)
    R.log(f"  instances 2-{LAUNCHES}: median {res['launch']['median']:.2f} s")

    def run(name: str, extra: list[str], timeout: float = 1800) -> dict:
        r = R.ansible_playbook(R.ROOT / "playbooks" / name, args + extra,
                               work / f"scale-{len(res['sizes'])}-{name}-{time.monotonic():.0f}.log", timeout=timeout)
        with R._created_lock:
            R._created.update(R.lxc_names(SCALE_PREFIX))
        if r["rc"] != 0:
            raise RuntimeError(f"{name} {' '.join(extra)}: rc {r['rc']}, see {r['log']}")
        return r

    largest = max(SIZES)
    for webs in SIZES:
        lbs = LBS_AT_LARGEST if webs == largest else 2
        R.delete(R.lxc_names(SCALE_PREFIX))
        shutil.rmtree(creds, ignore_errors=True)
        size = ["-e", f"lb_count={lbs}", "-e", f"web_count={webs}"]
        row: dict = {"lb_count": lbs, "web_count": webs, "load_before": list(os.getloadavg())}
        R.log(f"scale: site.yml {lbs}+{webs} from nothing")
        r = run("site.yml", size)
        row["from_nothing_s"] = round(r["seconds"], 1)
        R.log(f"  {r['seconds']:.1f} s; the re-run")
        r = run("site.yml", size)
        row["rerun_s"], row["rerun_changed"] = round(r["seconds"], 1), r["changed"]
        row["rerun_profile"] = task_profile(R, r["log"])
        R.log(f"  {r['seconds']:.1f} s, changed {r['changed']}; add_web.yml under the probe")
        R.wait_answering(SCALE_VIP, 120, backends=2)
        probe = R.Probe(SCALE_VIP, timeout_ms=500, max_s=900)
        r = run("add_web.yml", [], timeout=900)
        time.sleep(1.0)
        p = probe.stop()
        row["add_web_s"] = round(r["seconds"], 1)
        row["add_web_probe"] = {k: p[k] for k in ("requests", "failed", "longest_outage_ms")}
        row["memory_mib"] = memory_mib(R)
        row["load_after"] = list(os.getloadavg())
        R.log(f"  add_web {r['seconds']:.1f} s, {p['failed']} failed of {p['requests']}; memory {row['memory_mib']}")
        res["sizes"].append(row)

    R.log(f"scale: back to 2+2 from {LBS_AT_LARGEST}+{largest + 1} under the probe")
    R.wait_answering(SCALE_VIP, 120, backends=2)
    probe = R.Probe(SCALE_VIP, timeout_ms=500, max_s=1800)
    r = run("site.yml", ["-e", "lb_count=2", "-e", "web_count=2"])
    time.sleep(1.0)
    p = probe.stop()
    res["shrink"] = {"from": f"{LBS_AT_LARGEST}+{largest + 1}", "seconds": round(r["seconds"], 1),
                     "probe": {k: p[k] for k in ("requests", "failed", "no_answer", "longest_outage_ms")},
                     "left": sorted(R.lxc_names(SCALE_PREFIX))}
    R.log(f"  {r['seconds']:.1f} s, {p['failed']} failed of {p['requests']}")
    res["load_end"] = list(os.getloadavg())
    R.delete(R.lxc_names(SCALE_PREFIX))
    shutil.rmtree(creds, ignore_errors=True)
