#!/usr/bin/env bash
# Molecule's dependency step: picks this run's instance-name prefix and keeps
# it in $EPHEMERAL_DIR/prefix, where molecule/shared/vars/run.yml (the
# scenario's extra vars) reads it. A prefix whose instances still exist is kept
# (converge twice = one topology); otherwise a fresh random one is drawn, so
# runs and scenarios never share instance names.
# Usage: run-vars.sh SCENARIO EPHEMERAL_DIR PROJECT_DIR
# (the base config passes its ${MOLECULE_*} values: the shell dependency step
# does not export them).
set -euo pipefail
if (($# != 3)); then
  echo "usage: $0 SCENARIO EPHEMERAL_DIR PROJECT_DIR" >&2
  exit 2
fi
scenario="$1" dir="$2" root="$3"
file="$dir/prefix"
mkdir -p "$dir"
if [[ -f "$file" ]]; then
  prefix="$(cat "$file")"
  if [[ -n "$prefix" ]] && "$root/dist/bin/lxd_inventory" --list | grep -q "\"${prefix}lb-01\""; then
    echo "molecule run: keeping prefix $prefix ($file)"
    exit 0
  fi
fi
prefix="mol-${scenario}-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')-"
echo "$prefix" >"$file"
echo "molecule run: prefix $prefix ($file)"
