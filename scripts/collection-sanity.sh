#!/usr/bin/env bash
# `ansible-test sanity` on the vrrp_lxd.ha collection, the check Galaxy and
# Automation Hub reviewers run.
#
#   scripts/collection-sanity.sh [COLLECTION]   run it on COLLECTION: a tarball, or a
#                                               directory .../ansible_collections/<ns>/<name>;
#                                               without one, the collection built from dist/
#   scripts/collection-sanity.sh --prime        only make ansible-test's virtual
#                                               environments (scripts/setup-host.sh runs this)
# Further arguments go to ansible-test sanity (e.g. --test pylint, --junit, -v).
#
# ansible-test runs each sanity test in a virtual environment of its own under
# $HOME/.ansible/test/venv, which it makes once and reuses. To put pip into a new
# one it downloads a bootstrap script (get-pip.py) from ci-files.testing.ansible.com
# unless one is in $HOME/.ansible/test/cache. So ansible-test runs with its own HOME
# ($ANSIBLE_TEST_HOME), and a stand-in script is put there first: it installs pip
# with the project venv's pip, from the package index like every other package.
# Once the environments exist (--prime) a run installs nothing.
#
# Runs with --local on the project venv's Python, without --requirements, so the
# project venv itself is never changed. Environment: VRRP_VENV, ANSIBLE_TEST_HOME
# (default: ansible-test beside the venv), SANITY_TIMEOUT (seconds, default 900).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
source "$here/env.sh"
export PATH="$VRRP_VENV/bin:$PATH"
test_home="${ANSIBLE_TEST_HOME:-$(dirname "$VRRP_VENV")/ansible-test}"
limit="${SANITY_TIMEOUT:-900}"
py="$VRRP_VENV/bin/python"

die() { echo "collection-sanity: $*" >&2; exit 1; }
[[ -x "$VRRP_VENV/bin/ansible-test" ]] || die "no ansible-test in $VRRP_VENV (run scripts/setup-host.sh)"

prime=0
src=""
case "${1:-}" in
  --prime) prime=1; shift ;;
  -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "" | -*) ;;
  *) src="$1"; shift ;;
esac
extra=("$@")

pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
# The pip version ansible-test bootstraps names the cached script it looks for.
pip_version="$("$py" -c '
import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))["pip"])' "$pyver")" ||
  die "cannot tell which pip ansible-test bootstraps; not running it, so that it does not download get-pip.py"
[[ "$pip_version" =~ ^[0-9][0-9.]*$ ]] || die "unexpected pip version from ansible-test: $pip_version"
cache="$test_home/.ansible/test/cache"
mkdir -p "$cache"
standin="$cache/get_pip_${pip_version//./_}.py"
cat >"$standin.new" <<EOF
"""Stand-in for get-pip.py (scripts/collection-sanity.sh).

ansible-test runs this with the Python of a new virtual environment that has no
pip, with pip's install arguments. pip is installed from the package index by the
pip of $VRRP_VENV instead of a copy bundled in a downloaded script.
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
cmd = ["$py", "-m", "pip", "--python", sys.executable, "install", "--upgrade", "--force-reinstall"]
sys.exit(subprocess.call(cmd + args))
EOF
mv "$standin.new" "$standin"

work="$(mktemp -d "${TMPDIR:-/tmp}/vrrp-lxd-sanity.XXXXXX")"
trap 'rm -rf "$work"' EXIT

field() { sed -n "s/^$1:[[:space:]]*\\([^[:space:]#]*\\).*/\\1/p" "$2"; }

if ((prime)); then
  # The environments depend on ansible-test's pinned requirements and the Python,
  # not on the collection: made again only when those change.
  stamp="$test_home/.ansible/test/primed.sha256"
  want="$("$py" -c '
import glob, hashlib, os, sys, ansible_test
h = hashlib.sha256(sys.version.encode())
for f in sorted(glob.glob(os.path.join(os.path.dirname(ansible_test.__file__), "_data", "requirements", "*"))):
    h.update(open(f, "rb").read())
print(h.hexdigest())')"
  if [[ "$(cat "$stamp" 2>/dev/null)" == "$want" && -d "$test_home/.ansible/test/venv" ]]; then
    echo "ansible-test environments up to date ($test_home)"
    exit 0
  fi
  # The sources without the binaries are enough to start ansible-test.
  ns="$(field namespace "$VRRP_ROOT/collection/galaxy.yml")"
  name="$(field name "$VRRP_ROOT/collection/galaxy.yml")"
  dir="$work/ansible_collections/$ns/$name"
  mkdir -p "$dir"
  cp -R "$VRRP_ROOT/collection/." "$dir/"
  args=(--prime-venvs)
elif [[ -z "$src" || -f "$src" ]]; then
  tarball="$src"
  if [[ -z "$tarball" ]]; then
    tarball="$(COLLECTION_OUT="$work/out" timeout 300 bash "$here/build-collection.sh")"
  fi
  meta="$(tar -xzOf "$tarball" MANIFEST.json)" || die "$tarball is not a collection tarball"
  ns="$(jq -r .collection_info.namespace <<<"$meta")"
  name="$(jq -r .collection_info.name <<<"$meta")"
  dir="$work/ansible_collections/$ns/$name"
  mkdir -p "$dir"
  tar -xzf "$tarball" -C "$dir"
  args=()
elif [[ -d "$src" ]]; then
  dir="$(cd "$src" && pwd)"
  [[ "$(basename "$(dirname "$(dirname "$dir")")")" == ansible_collections ]] ||
    die "$src is not a directory .../ansible_collections/<namespace>/<name>"
  args=()
else
  die "$src: no such file or directory"
fi

cd "$dir"
echo "ansible-test sanity --python $pyver --local in $dir (HOME=$test_home)"
HOME="$test_home" timeout --kill-after=10 "$limit" \
  ansible-test sanity --python "$pyver" --local --color no "${args[@]}" "${extra[@]}"
if ((prime)); then
  echo "$want" >"$stamp"
  echo "ansible-test environments made ($test_home)"
fi
