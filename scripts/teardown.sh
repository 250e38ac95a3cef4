#!/usr/bin/env bash
# Deletes the topology that `make up` made (the host set-up stays).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
cd "$VRRP_ROOT"
export PATH="$VRRP_VENV/bin:$PATH"
ansible-playbook playbooks/teardown.yml
