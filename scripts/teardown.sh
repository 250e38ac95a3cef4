#!/usr/bin/env bash
# Deletes the topology that `make up` made and the two-host and cluster test
# beds if they are up (the host set-up stays).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
cd "$VRRP_ROOT"
export PATH="$VRRP_VENV/bin:$PATH"
ansible-playbook playbooks/teardown.yml
if lxc network show "${MH_BRIDGE:-vrrplan0}" >/dev/null 2>&1; then
  bash "$here/multihost/down.sh"
fi
if lxc network show "${MH_CLUSTER_BRIDGE:-vrrpcl0}" >/dev/null 2>&1; then
  MH_CLUSTER=1 MH_BRIDGE="${MH_CLUSTER_BRIDGE:-vrrpcl0}" bash "$here/multihost/down.sh"
fi
