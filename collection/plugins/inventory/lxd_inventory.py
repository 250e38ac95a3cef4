# Copyright: vrrp-lxd maintainers
# Apache License 2.0 (see the collection's galaxy.yml)
"""Thin inventory plugin over the collection's static lxd_inventory binary."""

from __future__ import annotations

DOCUMENTATION = r"""
name: lxd_inventory
short_description: LXD instances, their addresses and groups from one API request
description:
  - Runs the static C(lxd_inventory) binary shipped in this collection (C(libexec/lxd_inventory))
    with C(--list) and loads what it prints, that is every instance, its IPv4 as C(ansible_host),
    the groups named in the C(user.ansible.groups) config key, and automatic groups.
  - The binary makes one C(GET /1.0/instances?recursion=2) request to the LXD API,
    over the local unix socket or HTTPS with a client certificate and a pinned server certificate.
  - Options left unset are not passed on, so the binary also reads its own
    C(LXD_INVENTORY_*) environment variables and C(lxd_inventory.yml) file
    (beside the binary or in the directory of this inventory file).
  - The inventory file must end in C(.vrrp_lxd.yml) or C(.vrrp_lxd.yaml).
  - With O(connection=ssh) the connection variables (C(ansible_connection), C(ansible_user)) are also
    set on each host, so they win over the collection playbooks' C(group_vars/lxd.yml), which picks an
    LXD connection for the C(lxd) group.
extends_documentation_fragment:
  - ansible.builtin.constructed
options:
  plugin:
    description: Marks the file as this plugin's configuration.
    required: true
    choices: [vrrp_lxd.ha.lxd_inventory]
    type: str
  binary:
    description: The C(lxd_inventory) binary to run. Default is the one in this collection.
    type: path
  config_file:
    description: Settings file of the binary (C(LXD_INVENTORY_CONFIG)).
    type: path
  url:
    description: C(unix:/path/to/unix.socket) or C(https://host:8443) (C(LXD_INVENTORY_URL)).
    type: str
  client_cert:
    description: Client certificate (PEM) for HTTPS (C(LXD_INVENTORY_CLIENT_CERT)).
    type: path
    aliases: [cert_file]
  client_key:
    description: Client key (PEM) for HTTPS (C(LXD_INVENTORY_CLIENT_KEY)).
    type: path
    aliases: [key_file]
  server_cert:
    description: The server certificate (PEM) to pin for HTTPS (C(LXD_INVENTORY_SERVER_CERT)).
    type: path
  project:
    description: LXD project to list (C(LXD_INVENTORY_PROJECT)).
    type: str
  remote:
    description: Name of the C(lxc) remote for the C(community.general.lxd) connection (C(LXD_INVENTORY_REMOTE)).
    type: str
  interface:
    description: Interfaces whose address becomes C(ansible_host), first match wins (C(LXD_INVENTORY_INTERFACE)).
    type: list
    elements: str
  family:
    description: Address family of C(ansible_host) (C(LXD_INVENTORY_FAMILY)).
    type: str
    choices: [inet, inet6]
  state:
    description: Only list instances in these states; empty lists all (C(LXD_INVENTORY_STATE)).
    type: list
    elements: str
  type:
    description: Instance type to list (C(LXD_INVENTORY_TYPE)).
    type: str
    choices: [container, virtual-machine, both]
  connection:
    description: How Ansible reaches the instances (C(LXD_INVENTORY_CONNECTION)).
    type: str
    choices: [lxd, ssh]
  ssh_user:
    description: C(ansible_user) for C(connection=ssh) (C(LXD_INVENTORY_SSH_USER)).
    type: str
  timeout:
    description: API request timeout in seconds (C(LXD_INVENTORY_TIMEOUT)).
    type: int
  groups_key:
    description: Config key holding comma-separated group names (C(LXD_INVENTORY_GROUPS_KEY)).
    type: str
  group_by:
    description: Automatic groups, from C(profile), C(status), C(type), C(location), C(project) (C(LXD_INVENTORY_GROUP_BY)).
    type: list
    elements: str
  all_group:
    description: Group holding every listed instance (C(LXD_INVENTORY_ALL_GROUP)).
    type: str
  stopped_group:
    description: Group of instances that are not running (C(LXD_INVENTORY_STOPPED_GROUP)).
    type: str
"""

EXAMPLES = r"""
# inventory/local.vrrp_lxd.yml: the local LXD, instances reached with `lxc exec`
plugin: vrrp_lxd.ha.lxd_inventory

---
# inventory/cluster.vrrp_lxd.yml: a remote LXD over HTTPS, instances reached by SSH
plugin: vrrp_lxd.ha.lxd_inventory
url: https://lxd.example.com:8443
client_cert: ~/.config/lxc/client.crt
client_key: ~/.config/lxc/client.key
server_cert: ~/.config/lxc/servercerts/cluster.crt
connection: ssh
ssh_user: debian
keyed_groups:
  - key: lxd_location | default('none')
    prefix: member
"""

import json
import os
import platform
import subprocess

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

# Option name -> environment variable the binary reads.
_ENV = {
    "config_file": "LXD_INVENTORY_CONFIG",
    "url": "LXD_INVENTORY_URL",
    "client_cert": "LXD_INVENTORY_CLIENT_CERT",
    "client_key": "LXD_INVENTORY_CLIENT_KEY",
    "server_cert": "LXD_INVENTORY_SERVER_CERT",
    "project": "LXD_INVENTORY_PROJECT",
    "remote": "LXD_INVENTORY_REMOTE",
    "interface": "LXD_INVENTORY_INTERFACE",
    "family": "LXD_INVENTORY_FAMILY",
    "state": "LXD_INVENTORY_STATE",
    "type": "LXD_INVENTORY_TYPE",
    "connection": "LXD_INVENTORY_CONNECTION",
    "ssh_user": "LXD_INVENTORY_SSH_USER",
    "timeout": "LXD_INVENTORY_TIMEOUT",
    "groups_key": "LXD_INVENTORY_GROUPS_KEY",
    "group_by": "LXD_INVENTORY_GROUP_BY",
    "all_group": "LXD_INVENTORY_ALL_GROUP",
    "stopped_group": "LXD_INVENTORY_STOPPED_GROUP",
}
_SSH_VARS = ("ansible_connection", "ansible_user")


# The binary bounds each API request itself (the timeout option); this bounds
# the whole listing, a request per LXD host and one per instance at most.
_RUN_LIMIT = 300


def _bundled_binary():
    # plugins/inventory/lxd_inventory.py -> <collection>/libexec/lxd_inventory;
    # an arm64 controller runs libexec/aarch64/lxd_inventory where the
    # collection was built with the arm64 binaries.
    libexec = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "libexec"))
    if platform.machine() in ("aarch64", "arm64"):
        arm64 = os.path.join(libexec, "aarch64", "lxd_inventory")
        if os.path.exists(arm64):
            return arm64
    return os.path.join(libexec, "lxd_inventory")


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "vrrp_lxd.ha.lxd_inventory"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith((".vrrp_lxd.yml", ".vrrp_lxd.yaml"))

    def _environment(self):
        env = dict(os.environ)
        for option, var in _ENV.items():
            value = self.get_option(option)
            if value is None:
                continue
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            env[var] = str(value)
        return env

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)

        base_dir = os.path.dirname(os.path.abspath(path))
        binary = self.get_option("binary") or _bundled_binary()
        if not os.access(binary, os.X_OK):
            raise AnsibleParserError(f"the lxd_inventory binary {binary!r} is missing or not executable")
        try:
            proc = subprocess.run(
                [binary, "--list"],
                cwd=base_dir,
                env=self._environment(),
                capture_output=True,
                check=False,
                timeout=_RUN_LIMIT,
            )
        except subprocess.TimeoutExpired as e:
            raise AnsibleParserError(f"{binary} --list did not finish within {_RUN_LIMIT} s") from e
        except OSError as e:
            raise AnsibleParserError(f"cannot run {binary!r}: {e}") from e
        stderr = proc.stderr.decode(errors="replace").strip()
        if proc.returncode != 0:
            raise AnsibleParserError(f"{binary} --list failed (rc {proc.returncode}): {stderr}")
        try:
            data = json.loads(proc.stdout)
        except ValueError as e:
            raise AnsibleParserError(f"{binary} --list did not print JSON: {e}") from e
        self._load(data)

    def _load(self, data):
        if not isinstance(data, dict):
            raise AnsibleParserError("lxd_inventory printed JSON that is not an object")
        hostvars = data.get("_meta", {}).get("hostvars", {})
        for group, gdata in data.items():
            if group == "_meta" or not isinstance(gdata, dict):
                continue
            self.inventory.add_group(group)
            for host in gdata.get("hosts", []):
                self.inventory.add_host(host, group=group)
            gvars = gdata.get("vars", {})
            for key, value in gvars.items():
                self.inventory.set_variable(group, key, value)
            if gvars.get("ansible_connection") == "ssh":
                # Host variables outrank the playbooks' group_vars.
                for host in gdata.get("hosts", []):
                    for key in _SSH_VARS:
                        if key in gvars:
                            self.inventory.set_variable(host, key, gvars[key])
            for child in gdata.get("children", []):
                self.inventory.add_group(child)
                self.inventory.add_child(group, child)
        strict = self.get_option("strict")
        for host, hvars in hostvars.items():
            self.inventory.add_host(host)
            for key, value in hvars.items():
                self.inventory.set_variable(host, key, value)
            try:
                self._set_composite_vars(self.get_option("compose"), hvars, host, strict=strict)
                self._add_host_to_composed_groups(self.get_option("groups"), hvars, host, strict=strict)
                self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hvars, host, strict=strict)
            except Exception as e:
                raise AnsibleError(f"constructed options failed for {host}: {e}") from e
