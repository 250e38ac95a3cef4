"""Rows of the results table for the `cluster` section (the LXD cluster test
bed), merged by bench/run.py into the table bench/report.py makes.

`python bench/report_cluster.py bench/results/<date>-cluster.json` prints the
whole table again, these rows included.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import fmt, insert_rows, mmm, verdict  # noqa: E402 - next to this file


def rows(res: dict) -> list[list[str]]:
    out = []
    inv = res.get("inventory") or {}
    by = {r["what"]: r for r in inv.get("results", [])}
    curl, ours = by.get("curl: one GET /1.0/instances?recursion=2"), by.get("lxd_inventory --list")
    if curl and ours:
        per = ", ".join(f"{k} {v}" for k, v in (inv.get("per_member") or {}).items())
        m = lambda r: {"min": r["min_s"], "median": r["median_s"], "max": r["max_s"], "n": r["runs"]}
        ratio = ours["median_s"] / curl["median_s"]
        out.append([f"cluster, {inv.get('instances')} instances ({per}): `lxd_inventory --list` "
                    "against one raw `GET /1.0/instances?recursion=2` (curl)", fmt(m(curl), " s", 3),
                    f"{fmt(m(ours), ' s', 3)} ({ratio:.2f}x)", "<= 1.2x the raw request", verdict(ratio <= 1.2)])
        e2e = by.get("ansible-inventory -i lxd_inventory --list")
        if e2e:
            out.append(["same: `ansible-inventory -i lxd_inventory --list`", "-", fmt(m(e2e), " s", 3), "report", "-"])
    ev = res.get("evacuation") or {}
    for key, what in (("evacuate", f"`evacuate_host.yml` (`vrrp_evacuate_mode={ev.get('mode')}`)"),
                      ("restore", "`restore_host.yml`")):
        r = ev.get(key)
        if not r:
            continue
        p = r.get("probe") or {}
        lxd_s = (r.get("member_task") or {}).get("seconds")
        moved = f"; moved: {', '.join(r['moved']) or 'nothing'}" if "moved" in r else ""
        out.append([f"cluster: {what} on {ev.get('member')} (LXD {lxd_s} s{moved}), failed requests "
                    f"of {p.get('ok', 0) + p.get('failed', 0)}", "-",
                    f"{r.get('seconds', 0):.1f} s, {p.get('failed')} failed", "0 failed",
                    verdict(None if p.get("failed") is None else p["failed"] == 0)])
    return out


def merge(table: str, results: dict) -> str:
    new_rows = rows(results.get("cluster") or {})
    return table if not new_rows else "\n".join(insert_rows(table, new_rows))


if __name__ == "__main__":
    import report

    doc = json.load(open(sys.argv[1]))
    print(merge(report.markdown(doc), doc))
