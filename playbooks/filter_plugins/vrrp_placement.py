# Copyright: vrrp-lxd contributors
# Apache License 2.0
"""Placement of a tier's instances on the topology's LXD hosts."""

from __future__ import annotations

DOCUMENTATION = r"""
name: vrrp_placement
short_description: Which LXD host each instance of a tier goes on
description:
  - An instance that exists stays on its host. A new one goes to the host with the
    fewest instances of the tier (counting those placed before it), the first such
    host in the settings' order. On empty hosts that is round robin (lb-01 on the
    first host, lb-02 on the second, ...).
positional: current, hosts
options:
  _input:
    description: Instance names of one tier (lb or web), in order.
    type: list
    elements: str
    required: true
  current:
    description: Host name of each instance of the tier that exists.
    type: dict
    required: true
  hosts:
    description: Host names, in the order of the topology settings.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
placed: "{{ ['lb-01', 'lb-02', 'lb-03'] | vrrp_placement({}, ['lxd-1', 'lxd-2']) }}"
# => {'lb-01': 'lxd-1', 'lb-02': 'lxd-2', 'lb-03': 'lxd-1'}
"""

RETURN = r"""
_value:
  description: Instance name -> host name.
  type: dict
"""

from ansible.errors import AnsibleFilterError


def vrrp_placement(wanted, current, hosts):
    if not hosts:
        raise AnsibleFilterError("vrrp_placement: no LXD hosts configured")
    count = {h: 0 for h in hosts}
    for host in current.values():
        if host in count:
            count[host] += 1
    placed = {}
    for name in wanted:
        host = current.get(name)
        if host not in count:
            host = min(hosts, key=lambda h: (count[h], hosts.index(h)))
            count[host] += 1
        placed[name] = host
    return placed


class FilterModule:
    def filters(self):
        return {"vrrp_placement": vrrp_placement}
