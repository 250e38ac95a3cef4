# Copyright: vrrp-lxd contributors
# Apache License 2.0
"""The instance a tier gives up first."""

from __future__ import annotations

DOCUMENTATION = r"""
name: vrrp_fullest
short_description: The instance of a tier to remove first
description:
  - The last-named instance on the LXD host with the most instances of the tier
    (the later host in the settings' order on a tie), so shrinking keeps the
    tier spread over the hosts.
positional: hosts
options:
  _input:
    description: Host name of each instance of the tier.
    type: dict
    required: true
  hosts:
    description: Host names, in the order of the topology settings.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
leaving: "{{ {'web-01': 'lxd-1', 'web-02': 'lxd-2', 'web-03': 'lxd-1'} | vrrp_fullest(['lxd-1', 'lxd-2']) }}"
# => 'web-03'
"""

RETURN = r"""
_value:
  description: An instance name.
  type: str
"""

from ansible.errors import AnsibleFilterError


def vrrp_fullest(current, hosts):
    if not current:
        raise AnsibleFilterError("vrrp_fullest: the tier has no instance")
    by_host = {}
    for name, host in current.items():
        by_host.setdefault(host, []).append(name)
    order = {h: i for i, h in enumerate(hosts)}
    host = max(by_host, key=lambda h: (len(by_host[h]), order.get(h, -1)))
    return sorted(by_host[host])[-1]


class FilterModule:
    def filters(self):
        return {"vrrp_fullest": vrrp_fullest}
