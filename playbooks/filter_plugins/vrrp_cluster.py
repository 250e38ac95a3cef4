# Copyright: vrrp-lxd contributors
# Apache License 2.0
"""An LXD cluster in the topology's host list: its members as placement hosts."""

from __future__ import annotations

DOCUMENTATION = r"""
name: vrrp_cluster_members
short_description: The topology's LXD hosts with each cluster replaced by its members
description:
  - A host entry with C(cluster=true) is one LXD cluster reached through one
    endpoint. It becomes one entry per member (in the order LXD lists them),
    each the cluster's settings plus C(target) (the member, where the
    lxd_instance module creates an instance), C(cluster) (the cluster's
    name) and C(status) (the member's, lower case). Other entries stay as they are.
  - The members come from the inventory (C(lxd_cluster_members), which
    lxd_inventory reads from C(/1.0/cluster/members) when the same hosts file
    marks the entry as a cluster).
positional: members
options:
  _input:
    description: The host entries of the topology settings.
    type: list
    elements: dict
    required: true
  members:
    description: Cluster name -> its members (C(name), C(status)).
    type: dict
    required: true
"""

EXAMPLES = r"""
hosts: "{{ [{'name': 'cl', 'cluster': true, 'url': 'https://10.233.0.11:8443'}]
           | vrrp_cluster_members({'cl': [{'name': 'm1', 'status': 'online'}, {'name': 'm2', 'status': 'online'}]}) }}"
# => [{'name': 'm1', 'target': 'm1', 'cluster': 'cl', 'status': 'online', 'url': ...}, {'name': 'm2', ...}]
"""

RETURN = r"""
_value:
  description: Host entries, one per member for a cluster.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean


def vrrp_cluster_members(hosts, members):
    out = []
    members = members or {}
    for entry in hosts:
        if not boolean(entry.get("cluster", False), strict=False):
            out.append(entry)
            continue
        name = entry.get("name")
        listed = members.get(name)
        if not listed:
            raise AnsibleFilterError(
                "LXD cluster %s: the inventory lists no members for it; point lxd_inventory at the same "
                "hosts file (hosts_file: in its settings) so that it reads them" % name)
        for m in listed:
            member = dict(entry)
            member.update({"name": m["name"], "target": m["name"], "cluster": name,
                           "status": str(m.get("status", "")).lower()})
            out.append(member)
    return out


def vrrp_available_hosts(hosts):
    """Names of the hosts new instances may go on: every host but a cluster
    member that is not online (evacuated, offline)."""
    return [h["name"] for h in hosts if h.get("status", "online") == "online"]


def vrrp_hosts_by_name(hosts):
    """Host settings by name; a cluster's settings also under the cluster's own
    name (without a target), so that an instance the inventory places on the
    cluster as a whole is still reached through it."""
    out = {}
    for h in hosts:
        cluster = h.get("cluster")
        if isinstance(cluster, str) and cluster not in out:
            whole = {k: v for k, v in h.items() if k not in ("target", "status")}
            whole.update({"name": cluster, "cluster": True})
            out[cluster] = whole
    for h in hosts:
        out[h["name"]] = h
    return out


def vrrp_where(instances, hosts_by_name, default):
    """Where each instance is placed, by inventory name. `instances` are their
    inventory variables (`names | map('extract', hostvars)`); the place is the
    cluster member when the instance is on a cluster the settings list, else
    its LXD host (`default` where the inventory names none)."""
    out = {}
    for variables in instances:
        host = variables.get("lxd_host", default)
        location = variables.get("lxd_location")
        if location and hosts_by_name.get(location, {}).get("cluster") == host:
            host = location
        out[variables["inventory_hostname"]] = host
    return out


class FilterModule:
    def filters(self):
        return {
            "vrrp_cluster_members": vrrp_cluster_members,
            "vrrp_available_hosts": vrrp_available_hosts,
            "vrrp_hosts_by_name": vrrp_hosts_by_name,
            "vrrp_where": vrrp_where,
        }
