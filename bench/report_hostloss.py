"""Rows of the results table for the `hostloss` section (two LXD hosts), merged by
bench/run.py into the table bench/report.py makes.

`python bench/report_hostloss.py bench/results/<date>-hostloss.json` prints the
whole table again, these rows included.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import fmt, insert_rows, mmm, verdict  # noqa: E402 - next to this file


def _col(reps: list[dict], key: str, scale: float = 1.0) -> dict | None:
    return mmm(None if r.get(key) is None else r[key] * scale for r in reps)


def _max_ok(m: dict | None, limit: float, strict: bool = True) -> bool | None:
    if not m:
        return None
    return m["max"] < limit if strict else m["max"] <= limit


def variant_rows(name: str, v: dict) -> list[list[str]]:
    reps = v.get("reps") or []
    if not reps:
        return []
    check = v.get("check", "?").replace("default-server ", "")
    tag = f"`{check}`" if name == "default" else f"`{check}` (set with -e haproxy_health_check)"
    host = "`lxc stop -f` of the VIP holder's LXD host"
    rows = []
    out = _col(reps, "vip_outage_ms")
    rows.append([f"whole host lost ({host}; HAProxy {tag}): VIP window (first failed request to the "
                 f"first answer from the surviving LB)", "-", fmt(out, " ms"), "< 500 ms", verdict(_max_ok(out, 500))])
    win = _col(reps, "vip_window_ms")
    rows.append(["same: from the `lxc stop -f` command to that answer", "-", fmt(win, " ms"), "report", "-"])
    mark = _col(reps, "mark_ms", 1 / 1000)
    first = _col(reps, "first_failed_check_ms", 1 / 1000)
    rows.append([f"same: dead web node marked DOWN by the surviving HAProxy, from the stop "
                 f"(first failed check: {fmt(first, ' s', 1)})", "-",
                 fmt(mark, " s", 2), "< 1.5 s", verdict(_max_ok(mark, 1.5))])
    failed = _col(reps, "loss_failed")
    reqs = _col(reps, "loss_requests")
    rows.append([f"same: failed requests from the stop until the host is started again "
                 f"(of {reqs['median']:.0f})", "-", fmt(failed), "report", "-"])
    after = _col(reps, "loss_failed_after_mark")
    rows.append(["same: failed requests after the mark", "-", fmt(after), "0", verdict(_max_ok(after, 0, False))])
    first = _col(reps, "first_lost_web_served_s")
    back = _col(reps, "all_served_s")
    lxd = _col(reps, "lxd_back_s")
    rows.append([f"host back: `lxc start` to its web node served again through the VIP (its LXD answering "
                 f"after {fmt(lxd, ' s', 1)}; every web node then without a failure for 1 s: "
                 f"{fmt(back, ' s', 1)})", "-", fmt(first, " s", 1), "report", "-"])
    site = mmm(r["site"]["seconds"] for r in reps)
    stay = _col(reps, "changed_staying")
    ret = _col(reps, "changed_returning")
    rows.append([f"host back: `site.yml` re-run, changed on the host that stayed (returning host: "
                 f"{fmt(ret)}; run {fmt(site, ' s', 1)})", "-", fmt(stay), "0", verdict(_max_ok(stay, 0, False))])
    rf = _col(reps, "return_failed")
    rr = _col(reps, "return_requests")
    home = _col(reps, "vip_left_survivor_s")
    rows.append([f"host back: failed requests from `lxc start` until the VIP is home and every node UP "
                 f"(of {rr['median']:.0f}; the VIP went back at {fmt(home, ' s', 1)})", "-", fmt(rf), "report", "-"])
    return rows


def rows(res: dict) -> list[list[str]]:
    if not res or res.get("skipped"):
        return []
    out: list[list[str]] = []
    for name, v in (res.get("variants") or {}).items():
        out += variant_rows(name, v)
    ps = res.get("planned_stop") or []
    if ps:
        f = mmm(r["failed"] for r in ps)
        o = mmm(r["longest_outage_ms"] for r in ps)
        out.append(["`systemctl stop haproxy` on the VIP holder, VIP to the other host: failed requests", "-",
                    fmt(f), "0", verdict(f["max"] == 0)])
        out.append(["same: longest outage", "-", fmt(o, " ms"), "0 ms", verdict(o["max"] == 0)])
    site = res.get("site_from_nothing")
    if site:
        out.append(["`site.yml` from nothing across two hosts (2 LB + 2 web)", "-", f"{site['seconds']:.1f} s",
                    "-", verdict(site["rc"] == 0)])
    rerun = res.get("site_rerun")
    if rerun:
        out.append([f"`site.yml` converged re-run across two hosts (changed: {rerun['changed']})", "-",
                    f"{rerun['seconds']:.1f} s", "changed=0", verdict(rerun["rc"] == 0 and rerun["changed"] == 0)])
    inv = res.get("inventory") or {}
    two, one = inv.get("two_hosts_2_2"), inv.get("one_host_4")
    one2, two40 = inv.get("one_host_2"), inv.get("two_hosts_4_0")
    if two and one:
        for key, label in (("lxd_inventory", "`lxd_inventory --list`"),
                           ("ansible_inventory", "`ansible-inventory --list`")):
            ratio = two[key]["median"] / one[key]["median"]
            same = []
            if one2:
                same.append(f"2 + 2 / the first host's 2 alone, same moment: "
                            f"{two[key]['median'] / one2[key]['median']:.2f}x")
            if two40:
                same.append(f"4 + 0 / 4, same moment: {two40[key]['median'] / one[key]['median']:.2f}x")
            out.append([f"inventory of 4 instances, two hosts (2 + 2) against one host (4): {label} "
                        f"({ratio:.2f}x; {'; '.join(same)})", f"one host: {fmt(one[key], ' s', 3)}",
                        f"two hosts: {fmt(two[key], ' s', 3)}", "-", "-"])
    return out


def notes(res: dict) -> list[str]:
    out = []
    for name, v in (res.get("variants") or {}).items():
        for e in v.get("errors") or []:
            out.append(f"- hostloss [{name}]: {e}")
        for i, r in enumerate(v.get("reps") or []):
            if r.get("holders_after_loss") != [r.get("survivor")]:
                out.append(f"- hostloss [{name}] rep {i + 1}: VIP holders after the loss "
                           f"{r.get('holders_after_loss')}, expected [{r.get('survivor')}]")
            changed = [t for t in r.get("site", {}).get("changed_tasks", [])]
            if changed:
                out.append(f"- hostloss [{name}] rep {i + 1}: `site.yml` after the return changed: "
                           + "; ".join(changed))
    for e in res.get("errors") or []:
        out.append(f"- hostloss: {e}")
    if any((res.get("other_instances") or {}).values()):
        out.append(f"- hostloss: other instances were on the test bed: {res['other_instances']}")
    return out


def merge(table: str, results: dict) -> str:
    """The rows after the last row of the first table, the notes at the end."""
    res = results.get("hostloss") or {}
    new_rows = rows(res)
    new_notes = notes(res)
    if not new_rows and not new_notes:
        return table
    lines = insert_rows(table, new_rows)
    if new_notes:
        while lines and lines[-1] == "":
            lines.pop()
        lines += ["", "Two LXD hosts (`hostloss`):", *new_notes, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import report

    doc = json.load(open(sys.argv[1]))
    print(merge(report.markdown(doc), doc))
