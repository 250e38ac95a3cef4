#!/usr/bin/env bash
# Fails if tests left instances behind (names starting t-, mol- or bench-),
# unless KEEP=1 asked for them to stay.
set -euo pipefail
[[ "${KEEP:-0}" == 1 ]] && exit 0
left="$(lxc list --format csv -c n | grep -E '^(t-|mol-|bench-)' || true)"
if [[ -n "$left" ]]; then
  echo "tests left these instances behind:" >&2
  echo "$left" >&2
  exit 1
fi
echo "no test instances left behind"
