# Copyright: vrrp-lxd contributors
# Apache License 2.0
"""Instances paired with the LXD host they are on."""

from __future__ import annotations

DOCUMENTATION = r"""
name: vrrp_on_hosts
short_description: Instance names as lxd_host role items, each with its LXD host
description:
  - Turns instance names into C({name, lxd}) items for the lxd_host role's
    C(lxd_host_absent), C(lxd) being the settings of the host the instance is on
    (the default host when the inventory does not know it).
positional: current, hosts_by_name, default_host
options:
  _input:
    description: Instance names.
    type: list
    elements: str
    required: true
  current:
    description: Host name of each known instance.
    type: dict
    required: true
  hosts_by_name:
    description: Host settings by host name.
    type: dict
    required: true
  default_host:
    description: The host of an instance the inventory does not know.
    type: str
    required: true
"""

EXAMPLES = r"""
absent: "{{ ['web-03'] | vrrp_on_hosts({'web-03': 'lxd-2'}, vrrp_lxd_host_by_name, 'local') }}"
"""

RETURN = r"""
_value:
  description: One C({name, lxd}) mapping per instance.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError


def vrrp_on_hosts(names, current, hosts_by_name, default_host):
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
        return {"vrrp_on_hosts": vrrp_on_hosts}
