# Copyright: vrrp-lxd maintainers
# Apache License 2.0 (see the collection's galaxy.yml)
"""Runs the resolver binary built for the target's architecture."""

from __future__ import annotations

from ansible_collections.vrrp_lxd.ha.plugins.action._by_arch import ActionModule

__all__ = ["ActionModule"]
