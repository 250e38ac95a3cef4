# Copyright: vrrp-lxd contributors
# Apache License 2.0
"""Placement of the topology's instances on its LXD hosts."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def vrrp_placement(wanted, current, hosts):
    """Map each wanted instance name to the LXD host it goes on.

    wanted:  instance names of one tier (lb or web), in order.
    current: {instance name: host name} for the tier's instances that exist.
    hosts:   host names, in the order of the topology settings.

    An instance that exists stays where it is. A new one goes to the host with
    the fewest instances of the tier (counting those placed before it), the
    first such host in the settings' order: on empty hosts that is round robin
    (lb-01 on the first host, lb-02 on the second, ...).
    """
    if not hosts:
        raise AnsibleFilterError("vrrp_placement: no LXD hosts configured")
    count = {h: 0 for h in hosts}
    for name, host in current.items():
        if host in count:
            count[host] += 1
    placed = {}
    for name in wanted:
        host = current.get(name)
        if host is None or host not in count:
            host = min(hosts, key=lambda h: (count[h], hosts.index(h)))
            count[host] += 1
        placed[name] = host
    return placed


def vrrp_fullest(current, hosts):
    """The instance to take away from the tier: the last-named one on the host
    with the most instances of the tier (the last such host on a tie)."""
    if not current:
        raise AnsibleFilterError("vrrp_fullest: the tier has no instance")
    by_host = {}
    for name, host in current.items():
        by_host.setdefault(host, []).append(name)
    order = {h: i for i, h in enumerate(hosts)}
    host = max(by_host, key=lambda h: (len(by_host[h]), order.get(h, -1)))
    return sorted(by_host[host])[-1]


def vrrp_on_hosts(names, current, hosts_by_name, default_host):
    """The instances `names` as lxd_host_absent items: each with the LXD host
    it is on (`current`: {name: host name}), the default host when unknown."""
    out = []
    for name in names:
        host = current.get(name, default_host)
        if host not in hosts_by_name:
            raise AnsibleFilterError(
                "instance %s is on LXD host %s, which the topology settings do not list" % (name, host))
        out.append({"name": name, "lxd": hosts_by_name[host]})
    return out


class FilterModule:
    def filters(self):
        return {"vrrp_placement": vrrp_placement, "vrrp_fullest": vrrp_fullest,
                "vrrp_on_hosts": vrrp_on_hosts}
