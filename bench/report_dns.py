"""Rows of the results table for the `dns` and `tls` sections, merged by
bench/run.py into the table bench/report.py makes.

`python bench/report_dns.py bench/results/<date>-dns.json` prints the whole
table again, these rows included.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import fmt, insert_rows, mmm, verdict  # noqa: E402 - next to this file


def rows(res: dict) -> list[list[str]]:
    reps = res.get("reps") or []
    if not reps:
        return []

    def col(case: str, key: str) -> dict | None:
        return mmm(r[case].get(key) for r in reps)

    def lost(case: str) -> dict | None:
        return mmm(r[case]["lost"] + r[case]["wrong"] for r in reps)

    def none_lost(m: dict | None) -> bool | None:
        return None if m is None else m["max"] == 0

    planned, back, hard = lost("planned"), lost("planned_back"), lost("hard")
    hard_ms = col("hard", "longest_outage_ms")
    return [
        ["DNS through the VIP (A query, UDP, from the LXD host): latency p50", "-",
         fmt(col("steady", "p50_ms"), " ms", 2), "report", "-"],
        ["same: p99", "-", fmt(col("steady", "p99_ms"), " ms", 2), "report", "-"],
        ["DNS: `systemctl stop knot` on the VIP holder, queries lost (every 20 ms, 100 ms timeout)", "-",
         fmt(planned), "0", verdict(none_lost(planned))],
        ["DNS: knot started again (the VIP comes back), queries lost", "-", fmt(back), "0", verdict(none_lost(back))],
        ["DNS: VIP holder stopped hard (`lxc stop -f`), queries lost", "-", fmt(hard), "report", "-"],
        ["same: longest run of lost queries (the VIP window)", "-", fmt(hard_ms, " ms"), "< 500 ms",
         verdict(None if hard_ms is None else hard_ms["max"] < 500)],
    ]


def tls_rows(res: dict) -> list[list[str]]:
    reps = res.get("reps") or []
    if not reps:
        return []
    failed = mmm(r["latency"]["failed"] for r in reps)
    return [
        ["HTTPS through the VIP (new verified TLS connection per GET, every 20 ms): latency p50", "-",
         fmt(mmm(r["latency"]["p50_ms"] for r in reps), " ms", 1), "report", "-"],
        ["same: p99", "-", fmt(mmm(r["latency"]["p99_ms"] for r in reps), " ms", 1), "report", "-"],
        ["same: failed requests", "-", fmt(failed), "0", verdict(None if failed is None else failed["max"] == 0)],
        ["GETs per second, one client, a new connection each: HTTPS (full handshake each)", "-",
         fmt(mmm(r["https_burst"]["per_second"] for r in reps), "/s"), "report", "-"],
        ["same over plain HTTP", "-", fmt(mmm(r["http_burst"]["per_second"] for r in reps), "/s"), "report", "-"],
    ]


def merge(table: str, results: dict) -> str:
    """The rows after the last row of the first table."""
    new_rows = rows(results.get("dns") or {}) + tls_rows(results.get("tls") or {})
    if not new_rows:
        return table
    return "\n".join(insert_rows(table, new_rows))


if __name__ == "__main__":
    import report

    doc = json.load(open(sys.argv[1]))
    print(merge(report.markdown(doc), doc))
