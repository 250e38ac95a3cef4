"""The results table (Markdown) from a bench/results/<date>.json document.

`python bench/report.py bench/results/<date>.json` prints it again.
"""

from __future__ import annotations

import json
import statistics
import sys


def mmm(values) -> dict | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"min": min(vals), "median": statistics.median(vals), "max": max(vals), "n": len(vals)}


def fmt(m: dict | None, unit: str = "", digits: int = 0) -> str:
    if not m:
        return "n/a"

    def one(v: float) -> str:
        return f"{v:.{digits}f}"

    if m["n"] == 1:
        return f"{one(m['median'])}{unit}"
    return f"{one(m['min'])} / **{one(m['median'])}** / {one(m['max'])}{unit}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def insert_rows(table: str, rows: list[list[str]]) -> list[str]:
    """The table's lines with `rows` after the last row of its first table (a
    new table when it has none)."""
    lines = table.split("\n")
    head = next((i for i, ln in enumerate(lines) if ln.startswith("| figure |")), None)
    if head is None:
        lines += ["", "| figure | seed / incumbent | ours | goal | |", "|---|---|---|---|---|"]
        head = len(lines) - 2
    j = head + 2
    while j < len(lines) and lines[j].startswith("|"):
        j += 1
    lines[j:j] = ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def failover_rows(res: dict) -> list[list[str]]:
    sc = res.get("scenarios")
    if not sc:
        return []

    def col(scen: str, side: str, key: str) -> dict | None:
        return mmm(r[key] for r in sc[scen][side])

    rows = []
    pf_o, pf_s = col("planned_stop", "ours", "failed"), col("planned_stop", "seed", "failed")
    rows.append(["`systemctl stop haproxy` on the holder: failed requests", fmt(pf_s), fmt(pf_o), "0",
                 verdict(pf_o["max"] == 0 if pf_o else None)])
    po_o, po_s = col("planned_stop", "ours", "longest_outage_ms"), col("planned_stop", "seed", "longest_outage_ms")
    rows.append(["`systemctl stop haproxy` on the holder: longest outage", fmt(po_s, " ms"), fmt(po_o, " ms"),
                 "0 ms", verdict(po_o["max"] == 0 if po_o else None)])
    k_o, k_s = col("kill9", "ours", "longest_outage_ms"), col("kill9", "seed", "longest_outage_ms")
    rows.append(["HAProxy `kill -9` on the holder: window", fmt(k_s, " ms"), fmt(k_o, " ms"), "< 200 ms",
                 verdict(k_o["max"] < 200 if k_o else None)])
    h_o, h_s = col("hard_stop", "ours", "longest_outage_ms"), col("hard_stop", "seed", "longest_outage_ms")
    rows.append(["`lxc stop -f` of the holder: window", fmt(h_s, " ms"), fmt(h_o, " ms"), "< 500 ms",
                 verdict(h_o["max"] < 500 if h_o else None)])
    return rows


def growth_rows(res: dict) -> list[list[str]]:
    rows = []
    names = {"add_web": "`add_web.yml`", "add_lb": "`add_lb.yml`",
             "rolling_restart_web": "`rolling_restart_web.yml` (drain, restart, enable)"}
    for key, label in names.items():
        runs = [r for r in res.get(key, []) if "probe" in r]
        if not runs:
            continue
        failed = mmm(r["probe"]["failed"] for r in runs)
        reqs = mmm(r["probe"]["requests"] for r in runs)
        secs = mmm(r["seconds"] for r in runs)
        ok = all(r["rc"] == 0 for r in runs)
        rows.append([f"{label}: failed requests (of {reqs['median']:.0f}; run {secs['median']:.0f} s)",
                     "not handled by the seed", fmt(failed), "0",
                     verdict(failed["max"] == 0 and ok)])
    site = res.get("site_from_nothing", [])
    if site:
        rows.append(["`site.yml` from nothing (2 LB + 2 web)", "-", fmt(mmm(r["seconds"] for r in site), " s", 1),
                     "-", verdict(all(r["rc"] == 0 for r in site))])
    rerun = res.get("site_rerun", [])
    if rerun:
        changed = mmm(r["changed"] for r in rerun)
        rows.append([f"`site.yml` re-run, converged (changed: {fmt(changed)})", "-",
                     fmt(mmm(r["seconds"] for r in rerun), " s", 1), "changed=0",
                     verdict(changed["max"] == 0 and all(r["rc"] == 0 for r in rerun))])
    return rows


def inventory_rows(res: dict) -> list[list[str]]:
    rows_in = res.get("results")
    if not rows_in:
        return []
    by = {}
    for r in rows_in:
        w = r["what"]
        key = ("raw" if w.startswith("curl") else "bin" if w.startswith("lxd_inventory")
               else "e2e" if "lxd_inventory" in w else "community" if "community" in w
               else "floor" if "empty" in w else w)
        by[key] = {"min": r["min_s"], "median": r["median_s"], "max": r["max_s"], "n": r["runs"]}
    n = res.get("instances", "?")
    rows = []
    if "bin" in by and "raw" in by:
        ratio = by["bin"]["median"] / by["raw"]["median"]
        rows.append([f"inventory of {n} instances: `lxd_inventory --list` ({ratio:.2f}x the raw request)",
                     f"one raw `GET /1.0/instances?recursion=2`: {fmt(by['raw'], ' s', 3)}",
                     fmt(by["bin"], " s", 3), "<= 1.2x raw", verdict(ratio <= 1.2)])
    if "e2e" in by and "community" in by:
        ratio = by["community"]["median"] / by["e2e"]["median"]
        rows.append([f"inventory of {n} instances: `ansible-inventory --list` end to end ({ratio:.2f}x faster)",
                     f"community.general.lxd: {fmt(by['community'], ' s', 3)}",
                     fmt(by["e2e"], " s", 3), ">= 2x faster", verdict(ratio >= 2)])
    if "floor" in by:
        rows.append(["`ansible-inventory` on an empty inventory (Ansible's own start-up)", "-",
                     fmt(by["floor"], " s", 3), "-", "-"])
    return rows


def tasks_rows(res: dict) -> list[list[str]]:
    n, hosts = res.get("tasks_per_host"), res.get("hosts")
    runs = res.get("module_runs_per_host", {})
    empty = res.get("empty", [])

    def have(v: str) -> bool:
        return bool(res.get(v, {}).get("converge"))

    def job(v: str, phase: str) -> list[float]:
        return [r["seconds"] for r in res[v][phase]]

    def per_run(v: str, phase: str) -> list[float]:
        return [(s - e) / runs[v] for s, e in zip(job(v, phase), empty)]

    rows = []
    if have("ours") and have("python_full"):
        for phase, label in (("converge", "from scratch"), ("rerun", "converged re-run")):
            o, p = job("ours", phase), job("python_full", phase)
            ratio = mmm([a / b for a, b in zip(o, p)])
            rows.append([f"{n} Apache sites x {hosts} hosts, whole job, {label} (ours / Python: "
                         f"{ratio['median']:.2f}x)",
                         f"Python modules, {runs['python_full']} module runs per host: {fmt(mmm(p), ' s', 1)}",
                         f"`apache_site`, {n} tasks per host: {fmt(mmm(o), ' s', 1)}", "ratio <= 1",
                         verdict(ratio["median"] <= 1)])
    if have("ours") and have("python_template"):
        o, t = per_run("ours", "converge"), per_run("python_template", "converge")
        ratio = mmm([a / b for a, b in zip(o, t)])
        rows.append([f"one task, from scratch (job minus an empty play, / tasks per host; ours / Python: "
                     f"{ratio['median']:.2f}x)",
                     f"`template` + `validate` (vhost only): {fmt(mmm(t), ' s', 2)}",
                     f"`apache_site` (whole site): {fmt(mmm(o), ' s', 2)}", "report", "-"])
    if have("ours_noop") and have("python_ping"):
        o, p = per_run("ours_noop", "converge"), per_run("python_ping", "converge")
        ratio = mmm([a / b for a, b in zip(o, p)])
        rows.append([f"one task doing nothing: transport alone (ours / Python: {ratio['median']:.2f}x)",
                     f"`ping`, pipelined: {fmt(mmm(p), ' s', 2)}",
                     f"binary module, pushed then run: {fmt(mmm(o), ' s', 2)}", "report", "-"])
    return rows


def sizes_rows(res: dict) -> list[list[str]]:
    mods = {k: v for k, v in res.items() if isinstance(v, dict) and v.get("kind") == "module"}
    if not mods:
        return []
    largest = max(v["bytes"] for v in mods.values())
    text = ", ".join(f"{k} {v['bytes'] / 1024:.0f} KiB" for k, v in sorted(mods.items()))
    rows = [["target-side module binaries (static, stripped)", "-", text, "< 1024 KiB each",
             verdict(largest < 1024 * 1024)]]
    ctl = {k: v for k, v in res.items() if isinstance(v, dict) and v.get("kind", "").startswith("controller")}
    if ctl:
        text = ", ".join(f"{k} {v['bytes'] / 1024:.0f} KiB" for k, v in sorted(ctl.items()))
        rows.append(["controller-side binaries (LXD API over a socket or HTTPS)", "-", text, "-", "-"])
    return rows


def markdown(results: dict) -> str:
    reps = results.get("reps")
    load = results.get("load", {})
    l1 = load.get("load1") or {}
    out = [f"## Benchmark results, {results.get('date', '?')}", ""]
    out.append(f"{reps} repetitions of each figure (`min / **median** / max`). "
               f"Host: {results.get('cpus')} CPUs, load average during the run "
               f"{l1.get('min', 0):.1f}-{l1.get('max', 0):.1f} (mean {load.get('mean_load1') or 0:.1f}). "
               "Failover and growth: a probe every 20 ms through the VIP from the LXD host.")
    out.append("")
    out.append("| figure | seed / incumbent | ours | goal | |")
    out.append("|---|---|---|---|---|")
    for rows in (failover_rows(results.get("failover", {})), growth_rows(results.get("growth", {})),
                 inventory_rows(results.get("inventory", {})), tasks_rows(results.get("tasks", {})),
                 sizes_rows(results.get("sizes", {}))):
        for r in rows:
            out.append("| " + " | ".join(r) + " |")
    notes = []
    for sec in ("failover", "growth", "tasks"):
        for e in (results.get(sec) or {}).get("errors") or []:
            notes.append(f"- {sec}: {e}")
    rerun = (results.get("growth") or {}).get("site_rerun") or []
    changed = sorted({t for r in rerun for t in r.get("changed_tasks", [])})
    if changed:
        notes.append("- `site.yml` re-run changed: " + "; ".join(changed))
    if notes:
        out.append("")
        out.append("Notes from this run:")
        out += notes
    errors = results.get("errors") or {}
    if errors:
        out.append("")
        out.append("Sections that failed in this run (their figures are missing above):")
        for k, v in errors.items():
            out.append(f"- {k}: {v.splitlines()[0] if v else ''}")
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(json.load(open(sys.argv[1]))))
