"""The soak section's tables (bench/soak.py), appended by bench/run.py to the
table bench/report.py makes.

`python bench/report_soak.py bench/results/<date>-soak.json` prints them again.
"""

from __future__ import annotations

import json
import sys

KIND_TEXT = {
    "haproxy_kill": "`kill -9` HAProxy on the VIP holder (systemd restarts it)",
    "haproxy_stop": "`systemctl stop haproxy` on the holder, start 5 s later",
    "lb_stop_f": "`lxc stop -f` the holder, start 3 s later",
    "apache_kill": "`kill -9` every apache2 process on a web node (systemd restarts it)",
    "apache_stop": "`systemctl stop apache2` on a web node, start 5 s later",
    "add_web": "`add_web.yml`",
    "remove_web": "`remove_web.yml`",
    "none": "no event (before the first)",
}


def _mem(m: dict, proc: str) -> str:
    return "+".join(f"{(v.get(proc) or 0) / 1024:.1f}" for _, v in sorted(m.items())) + " MiB"


def run_table(run: dict) -> list[str]:
    p = run["probe"]
    l1 = run.get("load1") or {}
    load = (f"{l1['min']:.1f}-{l1['max']:.1f} (median {l1['median']:.1f})" if l1.get("n")
            else f"{run['load_start'][0]:.1f} -> {run['load_end'][0]:.1f}")
    label = run["label"]
    title = {"quiet": "quiet", "loaded": f"loaded ({run.get('burners')} CPU burners on the host)",
             "hard": "`lxc stop -f` of the holder, back to back"}.get(label, label)
    if label.startswith("repeat-"):
        title = KIND_TEXT.get(label[7:], label[7:]) + ", back to back"
    moves = run["vip_moves_unexplained"]
    out = [f"**Soak, {title}; advert_int {run.get('advert_int') or '?'}** "
           f"({p['duration_ms'] / 1000:.0f} s, {p['rate_per_s']:.0f} requests/s open loop, every "
           f"{p['post_every']}th a POST, {p['timeout_ms']:.0f} ms timeout, seed {run['seed']}; "
           f"load average {load} on 2 CPUs): {p['requests']} requests, "
           f"{p['get']['failed']} GETs and {p['post']['failed']} POSTs failed; "
           f"VIP moves {run['vip_moves']}, **{len(moves)} unexplained**"
           + (f" (at {', '.join(str(m['t_s']) + ' s' for m in moves)})" if moves else "")
           + f"; sender late-skipped {p.get('late_skipped', 0)}, max lag {p.get('max_send_lag_ms', 0):.0f} ms; "
           f"latency p50 {p['latency_p50_ms']:.1f} ms, p99 {p['latency_p99_ms']:.1f} ms.",
           "",
           "| event | count | failed GETs | failed POSTs | longest outage | errors |",
           "|---|--:|--:|--:|--:|---|"]
    for kind, b in sorted(run["by_kind"].items(), key=lambda kv: list(KIND_TEXT).index(kv[0])
                          if kv[0] in KIND_TEXT else 99):
        errs = ", ".join(f"{k} {v}" for k, v in sorted(b["errors"].items())) or "-"
        out.append(f"| {KIND_TEXT.get(kind, kind)} | {b['events']} | {b['failed_get']} | {b['failed_post']} | "
                   f"{b['longest_outage_ms']:.0f} ms | {errs} |")
    restarts = [e["failed_after_restart"] for e in run["events"] if "failed_after_restart" in e]
    if restarts and label.startswith("repeat-"):
        out += ["", "Failed requests after the start, per event: " + ", ".join(map(str, restarts)) + "."]
    hard = [w for e in run["events"] if e["kind"] == "lb_stop_f" and not e.get("error")
            for w in (e.get("windows_ms") or [0.0])[:1]]
    if hard:
        out += ["", "`lxc stop -f` windows (first failed request to the next answer, by send time): "
                    + ", ".join(f"{w:.0f}" for w in hard) + " ms."]
    ms0, ms1 = run.get("memory_start") or {}, run.get("memory_end") or {}
    if ms0 and ms1:
        out += ["", f"RSS per LB, start -> end: haproxy {_mem(ms0, 'haproxy')} -> {_mem(ms1, 'haproxy')}; "
                    f"keepalived {_mem(ms0, 'keepalived')} -> {_mem(ms1, 'keepalived')}."]
    errors = [f"{e['kind']}: {e['error']}" for e in run["events"] if e.get("error")]
    if errors:
        out += ["", "Events that did not go as planned: " + "; ".join(errors)]
    return out


def markdown(res: dict) -> list[str]:
    out: list[str] = []
    for run in res.get("runs") or []:
        out += ["", *run_table(run)]
    return out


def merge(table: str, results: dict) -> str:
    res = results.get("soak") or {}
    extra = markdown(res)
    if not extra:
        return table
    return table.rstrip("\n") + "\n\n### Soak\n" + "\n".join(extra) + "\n"


if __name__ == "__main__":
    doc = json.load(open(sys.argv[1]))
    print("\n".join(markdown(doc.get("soak") or doc)))
