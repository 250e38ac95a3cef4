#!/usr/bin/env python3
"""Inventory source for AWX: a project file run through Ansible's script
inventory plugin (the one the project's ansible.cfg enables).

Runs the lxd_inventory binary (the execution environment puts it in
/usr/local/bin; in a checkout after `make build` it is dist/bin) with the same
arguments. Settings come from LXD_INVENTORY_* variables, which the LXD
credential and the inventory source's variables set.

With --list it also copies the connection variables the binary puts on its
groups (ansible_connection, ansible_user, ...) onto each host. AWX imports them
as host variables, which take precedence over the playbooks' group_vars: the
playbooks pick the `lxd_api` connection (LXD's local unix socket) for the `lxd`
group, which an execution environment does not have, while an AWX inventory
source chooses SSH (LXD_INVENTORY_CONNECTION=ssh).
"""

import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PINNED = ("ansible_connection", "ansible_user", "ansible_lxd_remote", "ansible_lxd_project")


def binary():
    candidates = (
        os.environ.get("LXD_INVENTORY_BIN"),
        shutil.which("lxd_inventory"),
        os.path.join(HERE, "..", "..", "dist", "bin", "lxd_inventory"),
    )
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    sys.exit("lxd_inventory: binary not found (not on PATH, no dist/bin/lxd_inventory; set LXD_INVENTORY_BIN)")


def hosts_of(data, group, seen=None):
    """Hosts of a group and of its children."""
    seen = set() if seen is None else seen
    if group in seen or not isinstance(data.get(group), dict):
        return []
    seen.add(group)
    out = list(data[group].get("hosts", []))
    for child in data[group].get("children", []):
        out += hosts_of(data, child, seen)
    return out


def pin_connection(data):
    hostvars = data.setdefault("_meta", {}).setdefault("hostvars", {})
    for group, gdata in data.items():
        if group == "_meta" or not isinstance(gdata, dict):
            continue
        pinned = {k: v for k, v in gdata.get("vars", {}).items() if k in PINNED}
        for host in hosts_of(data, group) if pinned else []:
            for key, value in pinned.items():
                hostvars.setdefault(host, {}).setdefault(key, value)
    return data


def main():
    args = sys.argv[1:]
    proc = subprocess.run([binary(), *args], stdout=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        sys.exit(proc.returncode)
    if args[:1] != ["--list"]:
        sys.stdout.buffer.write(proc.stdout)
        return
    json.dump(pin_connection(json.loads(proc.stdout)), sys.stdout)


if __name__ == "__main__":
    main()
