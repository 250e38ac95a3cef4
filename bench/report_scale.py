"""The scale section's table and chart (bench/scale.py), appended by
bench/run.py to the table bench/report.py makes.

`python bench/report_scale.py bench/results/<date>-scale.json [chart.png]`
prints the table again and draws the chart (beside the JSON by default).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(row: dict) -> str:
    return f"{row['load_before'][0]:.1f} -> {row['load_after'][0]:.1f}"


def markdown(res: dict) -> list[str]:
    sizes = res.get("sizes") or []
    if not sizes:
        return []
    out = []
    launch = res.get("launch")
    if launch:
        later = launch["later"]
        out += ["", f"**Launch to IPv4** (`lxc launch` until LXD reports eth0's global IPv4, one after the other; "
                    f"load {launch['load'][0]:.1f}): instances 2-{len(later) + 1} "
                    f"{launch['min']:.2f} / **{launch['median']:.2f}** / {launch['max']:.2f} s "
                    f"(`lxc launch` returning {min(r['launch_s'] for r in later):.2f}-"
                    f"{max(r['launch_s'] for r in later):.2f} s); the first {launch['first']['ipv4_s']:.2f} s. "
                    "Goal: median <= 1.5 s."]
    out += ["", "**Scale** (one run per size; load average 1 min before -> after the size)", "",
           "| LB + web | site.yml from nothing | converged re-run (changed) | add_web.yml | failed requests during add_web | memory per LB / web node (median) | load |",
           "|---|--:|--:|--:|--:|---|---|"]
    for r in sizes:
        m = r.get("memory_mib") or {}
        mem = " / ".join(f"{m[t]['median']:.0f} MiB" for t in ("lb", "web") if t in m)
        p = r["add_web_probe"]
        out.append(f"| {r['lb_count']} + {r['web_count']} | {r['from_nothing_s']:.1f} s | {r['rerun_s']:.1f} s "
                   f"({r['rerun_changed']}) | {r['add_web_s']:.1f} s | {p['failed']} of {p['requests']} | {mem} | "
                   f"{_load(r)} |")
    s = res.get("shrink")
    if s:
        p = s["probe"]
        out += ["", f"Back to 2 + 2 from {s['from']} with site.yml: {s['seconds']:.1f} s, {p['failed']} of "
                    f"{p['requests']} requests failed (longest outage {p['longest_outage_ms']:.0f} ms); left: "
                    f"{', '.join(s['left']) or 'nothing'}."]
    big = sizes[-1]
    if big.get("rerun_profile"):
        out += ["", f"Converged re-run at {big['lb_count']} + {big['web_count']}, the longest tasks "
                    "(first host's start to last host's end):", "", "| task | hosts | seconds |", "|---|--:|--:|"]
        out += [f"| {t['task']} | {t['hosts']} | {t['seconds']:.2f} |" for t in big["rerun_profile"]]
    return out


def merge(table: str, results: dict) -> str:
    extra = markdown(results.get("scale") or {})
    return table + ("\n".join(extra) + "\n" if extra else "")


def chart(res: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = res.get("sizes") or []
    if not sizes:
        return
    webs = [r["web_count"] for r in sizes]
    fig, (ax, mx) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in [("from_nothing_s", "site.yml from nothing"), ("rerun_s", "converged re-run"),
                       ("add_web_s", "add_web.yml")]:
        ax.plot(webs, [r[key] for r in sizes], marker="o", label=label)
    ax.set_xlabel("web nodes (2 LBs; 3 at the largest size)")
    ax.set_ylabel("seconds")
    ax.set_xticks(webs)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Time against size")
    for tier, label in [("lb", "load balancer"), ("web", "web node")]:
        mx.plot(webs, [(r.get("memory_mib") or {}).get(tier, {}).get("median", 0) for r in sizes],
                marker="o", label=label)
    mx.set_xlabel("web nodes")
    mx.set_ylabel("MiB per instance (median)")
    mx.set_xticks(webs)
    mx.set_ylim(bottom=0)
    mx.grid(alpha=0.3)
    mx.legend()
    mx.set_title("Memory per instance")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    doc = json.loads(Path(sys.argv[1]).read_text())
    print("\n".join(markdown(doc.get("scale") or {})))
    chart(doc.get("scale") or {}, Path(sys.argv[2]) if len(sys.argv) > 2 else Path(sys.argv[1]).with_suffix(".png"))
