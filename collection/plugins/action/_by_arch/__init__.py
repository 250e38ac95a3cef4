# Copyright: vrrp-lxd maintainers
# Apache License 2.0 (see the collection's galaxy.yml)
"""Runs a binary module built for the architecture of the host it runs on.

The x86_64 builds are the modules themselves (plugins/modules/<name>), so
x86_64 hosts, and hosts of an unknown architecture, run what they always ran.
Other builds are in libexec/<arch>/<name>. The architecture is the host's
ansible_architecture fact (of the delegate with delegate_to) or, when facts
were not gathered, what `uname -m` says there; that answer is kept as the
fact, so a host is asked once per run.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action.normal import ActionModule as NormalAction

# plugins/action/_by_arch/__init__.py -> the collection's root
_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))

# uname -m (and what facts call it) -> the build; None: the module itself
_BUILDS = {
    "x86_64": None,
    "amd64": None,
    "aarch64": "aarch64",
    "arm64": "aarch64",
}


def binary_for(module_name, arch, root=_ROOT):
    """The path of the build of module_name for arch, or None for the module itself."""
    if not arch:
        return None
    build = _BUILDS.get(arch.strip().lower())
    if build is None:
        if arch.strip().lower() in _BUILDS:
            return None
        raise AnsibleActionFail(
            "%s is a static binary built for x86_64 and aarch64 only; this host is %s" % (module_name, arch)
        )
    path = os.path.join(root, "libexec", build, module_name.split(".")[-1])
    if not os.path.isfile(path):
        raise AnsibleActionFail(
            "this host is %s, and this copy of the collection has no %s build of %s (%s): "
            "build it with `make build-aarch64` before `make collection`" % (arch, build, module_name, path)
        )
    return path


class ActionModule(NormalAction):

    _learned_arch = None

    def _host_vars(self, task_vars):
        if self._task.delegate_to:
            return (task_vars.get("ansible_delegated_vars") or {}).get(self._task.delegate_to) or {}
        return task_vars

    def _architecture(self, task_vars):
        host_vars = self._host_vars(task_vars)
        arch = host_vars.get("ansible_architecture") or (host_vars.get("ansible_facts") or {}).get("architecture")
        if arch:
            return str(arch)
        res = self._low_level_execute_command("uname -m", sudoable=False)
        arch = (res.get("stdout") or "").strip() if res.get("rc") == 0 else ""
        if arch and (not self._task.delegate_to or self._task.delegate_facts):
            self._learned_arch = arch
        return arch

    def _configure_module(self, module_name, module_args, task_vars):
        built = super()._configure_module(module_name, module_args, task_vars)
        path = binary_for(module_name, self._architecture(task_vars))
        if path is None:
            return built
        # For a binary module the path (always the last item) is the file
        # that is copied to the host and run.
        return tuple(built[:-1]) + (path,)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if self._learned_arch:
            facts = result.setdefault("ansible_facts", {})
            facts.setdefault("ansible_architecture", self._learned_arch)
        return result
