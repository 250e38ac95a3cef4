"""The servers of one HAProxy backend as `show stat` gives them, read inside a
load balancer on HAProxy's admin socket (the base image has no socat).

The tests and the benchmarks run it with the instance's python3 (`python3 -c`):

    SOCKET BACKEND
        every server, a line each: name, a tab, its status (UP, DOWN, UP 1/3, MAINT...)
    SOCKET BACKEND --poll LIMIT [SERVER...]
        `ready TIME`, then `state TIME NAME STATUS CHECK` at every change of a
        server (status with _ for spaces), reading every 100 ms; ends once every
        SERVER named has been down for 1 s, or after LIMIT seconds, with `end TIME`.
        TIME is the kernel's wall clock, which the instance shares with the host.
"""

import socket
import sys
import time


def servers(path, backend):
    """{name: (status, check status)} of backend's servers."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(1.0)
    try:
        s.connect(path)
        s.sendall(b"show stat\n")
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    finally:
        s.close()
    lines = buf.decode().splitlines()
    if not lines:
        return {}
    head = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        r = dict(zip(head, line.split(",")))
        if r.get("pxname") == backend and r.get("svname") not in ("FRONTEND", "BACKEND", None):
            out[r["svname"]] = (r.get("status", ""), r.get("check_status") or "-")
    return out


def poll(path, backend, limit, watch):
    last, down_since, end = {}, None, time.time() + limit
    print("ready %.6f" % time.time(), flush=True)
    while time.time() < end:
        t = time.time()
        try:
            cur = {k: "%s %s" % (st.replace(" ", "_"), check) for k, (st, check) in servers(path, backend).items()}
        except OSError as e:
            print("error %.6f %s" % (t, e), flush=True)
            cur = last
        for k, v in sorted(cur.items()):
            if last.get(k) != v:
                print("state %.6f %s %s" % (t, k, v), flush=True)
        last = cur
        if watch and all(last.get(w, "").startswith(("DOWN ", "MAINT")) for w in watch):
            down_since = down_since or t
            if t - down_since > 1.0:
                break
        time.sleep(max(0.0, 0.1 - (time.time() - t)))
    print("end %.6f" % time.time(), flush=True)


def main(argv):
    path, backend = argv[0], argv[1]
    if argv[2:3] == ["--poll"]:
        poll(path, backend, float(argv[3]), set(argv[4:]))
        return
    for name, (status, _) in servers(path, backend).items():
        print("%s\t%s" % (name, status))


if __name__ == "__main__":
    main(sys.argv[1:])
