#!/usr/bin/env bash
# Deploys the topology across the two-host test bed (after up.sh): lb-01 and
# web-01 on the first host, lb-02 and web-02 on the second, the VIP on the LAN.
# With MH_CLUSTER=1 the same across the cluster's members.
# Prints how to run the other playbooks against it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
cd "$VRRP_ROOT"
export PATH="$VRRP_VENV/bin:$PATH"

hosts_file="$MH_ETC/hosts.yml"
[[ -f "$hosts_file" ]] || mh_die "$hosts_file is missing: run scripts/multihost/up.sh first"
default_vip=10.232.0.10
[[ "$MH_CLUSTER" != 1 ]] || default_vip=10.233.0.10
vip="${MH_VIP:-$default_vip}"
route="$(ip route get "$vip")"
grep -q " dev $MH_BRIDGE " <<<"$route" || mh_die "$vip is not routed via $MH_BRIDGE: $route"

# The inventory reads the same hosts file the playbooks place by.
inventory_config="$MH_ETC/lxd_inventory.yml"
printf 'hosts_file: %s\nconnection: lxd_api\n' "$hosts_file" > "$inventory_config"
export LXD_INVENTORY_CONFIG="$inventory_config"

started=$SECONDS
mh_step "site.yml across ${MH_HOSTS[*]}: ${LB_COUNT:-2} load balancers, ${WEB_COUNT:-2} web nodes, VIP $vip"
ansible-playbook playbooks/site.yml -e "vrrp_hosts_file=$hosts_file" -e "vrrp_vip=$vip" \
  -e "lb_count=${LB_COUNT:-2}" -e "web_count=${WEB_COUNT:-2}"
mh_step "topology up across ${MH_HOSTS[*]} in $((SECONDS - started))s; to run the other playbooks against it:"
cat <<MSG
  export PATH=$VRRP_VENV/bin:\$PATH LXD_INVENTORY_CONFIG=$inventory_config
  ansible-playbook playbooks/add_web.yml -e vrrp_hosts_file=$hosts_file -e vrrp_vip=$vip
MSG
