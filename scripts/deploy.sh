#!/usr/bin/env bash
# Brings the topology up on the local LXD with site.yml and prints what it made.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
cd "$VRRP_ROOT"
export PATH="$VRRP_VENV/bin:$PATH"
started=$SECONDS
printf '\033[1m==> site.yml: %s load balancers, %s web nodes\033[0m\n' "${LB_COUNT:-2}" "${WEB_COUNT:-2}"
ansible-playbook playbooks/site.yml -e "lb_count=${LB_COUNT:-2}" -e "web_count=${WEB_COUNT:-2}"
printf '\033[1m==> topology up in %ss\033[0m\n' "$((SECONDS - started))"
