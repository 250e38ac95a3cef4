"""Chart of a benchmark run: failover windows (ours vs the seed) and inventory times.

Usage: python bench/plot.py bench/results/<date>.json bench/results/<date>.png
Bars are medians, whiskers min and max over the repetitions.
"""

from __future__ import annotations

import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OURS, SEED = "#1f77b4", "#b0b0b0"


def spread(values: list[float]) -> tuple[float, float, float]:
    med = statistics.median(values)
    return med, med - min(values), max(values) - med


def failover(ax, res: dict) -> None:
    sc = res.get("failover", {}).get("scenarios")
    if not sc:
        ax.text(0.5, 0.5, "no failover figures in this run", ha="center", va="center")
        ax.set_axis_off()
        return
    labels = [("planned_stop", "systemctl stop haproxy"), ("kill9", "kill -9 haproxy"),
              ("hard_stop", "lxc stop -f holder")]
    width = 0.38
    for i, (key, _) in enumerate(labels):
        for j, (side, color, name) in enumerate((("seed", SEED, "seed (v2, advert 1 s, killall -0 / 2 s)"),
                                                  ("ours", OURS, "ours (v3, advert 0.1 s, track file)"))):
            vals = [r["longest_outage_ms"] for r in sc[key][side]]
            if not vals:
                continue
            med, lo, hi = spread(vals)
            x = i + (j - 0.5) * width
            ax.bar(x, med, width, color=color, yerr=[[lo], [hi]], capsize=4,
                   label=name if i == 0 else None)
            ax.annotate(f"{med:.0f}", (x, med + hi), textcoords="offset points", xytext=(0, 3),
                        ha="center", fontsize=8)
    ax.set_xticks(range(len(labels)), [lbl for _, lbl in labels])
    ax.set_ylabel("longest outage through the VIP (ms)")
    ax.set_title("VIP failover (probe every 20 ms)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.18)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)


def inventory(ax, res: dict) -> None:
    inv = res.get("inventory", {})
    rows = inv.get("results")
    if not rows:
        ax.text(0.5, 0.5, "no inventory figures in this run", ha="center", va="center")
        ax.set_axis_off()
        return
    names = {"curl": "one raw GET recursion=2", "lxd_inventory --list": "lxd_inventory --list",
             "ansible-inventory -i lxd_inventory": "ansible-inventory + ours",
             "ansible-inventory -i *lxd.yml": "ansible-inventory +\ncommunity.general.lxd",
             "ansible-inventory, empty": "ansible-inventory, empty\n(Ansible's start-up)"}
    labels, meds, los, his, colors = [], [], [], [], []
    for r in rows:
        label = next((v for k, v in names.items() if r["what"].startswith(k)), r["what"])
        labels.append(label)
        meds.append(r["median_s"])
        los.append(r["median_s"] - r["min_s"])
        his.append(r["max_s"] - r["median_s"])
        colors.append(SEED if ("community" in label or "empty" in label or "raw" in label) else OURS)
    y = range(len(labels))
    ax.barh(list(y), meds, xerr=[los, his], color=colors, capsize=4)
    for i, m in enumerate(meds):
        ax.annotate(f"{m:.3f} s", (m, i), textcoords="offset points", xytext=(6, -10), fontsize=8)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (median, min-max)")
    ax.set_title(f"Inventory of {inv.get('instances', '?')} instances")
    ax.grid(axis="x", alpha=0.3)


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    res = json.load(open(src))
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.1, 1]})
    failover(a, res)
    inventory(b, res)
    load = res.get("load", {}).get("mean_load1")
    fig.suptitle(f"vrrp-lxd benchmarks {res.get('date', '')[:10]}: {res.get('reps')} repetitions, "
                 f"{res.get('cpus')} CPUs, mean load {load or 0:.1f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main()
