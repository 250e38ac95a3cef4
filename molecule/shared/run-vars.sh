#!/usr/bin/env bash
# Molecule's dependency step: picks this run's instance-name prefix, VIP and VRID
# and writes them where every playbook of the scenario reads them
# (--extra-vars=@$MOLECULE_EPHEMERAL_DIRECTORY/run.yml). A prefix whose instances
# still exist is kept (converge twice = one topology); otherwise a fresh random
# one is drawn, so runs and scenarios never share instance names.
# Usage: run-vars.sh VIP VRID SCENARIO EPHEMERAL_DIR PROJECT_DIR
# (molecule.yml passes its ${MOLECULE_*} values: the shell dependency step does
# not export them).
set -euo pipefail
if (($# != 5)); then
  echo "usage: $0 VIP VRID SCENARIO EPHEMERAL_DIR PROJECT_DIR" >&2
  exit 2
fi
vip="$1" vrid="$2" scenario="$3" dir="$4" root="$5"
file="$dir/run.yml"
mkdir -p "$dir"
if [[ -f "$file" ]]; then
  prefix="$(sed -n 's/^vrrp_prefix: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$file")"
  if [[ -n "$prefix" ]] && "$root/dist/bin/lxd_inventory" --list | grep -q "\"${prefix}lb-01\""; then
    echo "molecule run vars: keeping $prefix ($file)"
    exit 0
  fi
fi
prefix="mol-${scenario}-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')-"
cat >"$file" <<YAML
---
# This molecule run's topology (written by molecule/shared/run-vars.sh).
vrrp_prefix: "$prefix"
vrrp_vip: $vip
vrrp_vrid: $vrid
YAML
echo "molecule run vars: $prefix VIP $vip VRID $vrid ($file)"
