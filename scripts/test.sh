#!/usr/bin/env bash
# Everything `make test` runs, in order; stops at the first failure. Expects the
# host prepared by setup-host.sh and the binaries built by `make build`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
cd "$VRRP_ROOT"
export PATH="$VRRP_VENV/bin:$PATH"
step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
started=$SECONDS

step "rustfmt, clippy (no function over 100 lines) and unused dependencies"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --lib --bins -- -D clippy::too_many_lines
if command -v cargo-machete >/dev/null; then
  cargo machete --skip-target-dir
else
  echo "unused dependencies not checked: cargo-machete is not installed (cargo install --locked cargo-machete --version 0.9.2)"
fi

# testbed/tests/aarch64.rs and the collection tests need the arm64 builds;
# a warm rebuild is a relink at most.
step "arm64 binaries (dist/aarch64), for the tests under qemu-user"
bash "$here/build-aarch64.sh"

step "unit, protocol-differential and integration tests (real LXD)"
cargo test --workspace -- --test-threads="${TEST_THREADS:-2}"

step "two LXD hosts: the test bed, then the tests that need it (named two_hosts_*)"
if [[ "${KEEP:-0}" != 1 ]]; then
  trap 'bash "$here/multihost/down.sh" >/dev/null 2>&1 || true' EXIT
fi
MH_CHECK=0 bash "$here/multihost/up.sh"
cargo test --workspace -- --ignored --test-threads=1 two_hosts
[[ "${KEEP:-0}" == 1 ]] || bash "$here/multihost/down.sh"

step "an LXD cluster of three nested hosts: the test bed, then its end-to-end test"
if [[ "${KEEP:-0}" != 1 ]]; then
  trap 'bash "$here/multihost/down.sh" >/dev/null 2>&1 || true; MH_CLUSTER=1 bash "$here/multihost/down.sh" >/dev/null 2>&1 || true' EXIT
fi
MH_CLUSTER=1 MH_CHECK=0 bash "$here/multihost/up.sh"
cargo test -p testbed --test e2e_cluster -- --ignored --test-threads=1
[[ "${KEEP:-0}" == 1 ]] || MH_CLUSTER=1 bash "$here/multihost/down.sh"

step "Incus beside LXD: set-up (once), then the module, the inventory and site.yml 2+2 on it"
incus_started=$SECONDS
bash "$here/setup-incus.sh"
VRRP_BACKEND=incus cargo test -p testbed --test e2e_incus -- --ignored --test-threads=1
echo "Incus step: $((SECONDS - incus_started)) s"

if [[ -d roles && -d playbooks ]]; then
  # .ansible-lint says what: the production profile over roles/, playbooks/,
  # awx/ and molecule/, the same as `ansible-lint` run at the root by hand.
  # awx/playbooks/ needs the collection installed: the collection test lints it.
  step "ansible-lint (production profile)"
  ansible-lint
fi

if [[ -f molecule/default/molecule.yml ]]; then
  step "molecule test -s default"
  molecule test -s default
fi

step "leftovers"
"$here/leftovers.sh"
printf '\033[1m==> all tests passed in %ss\033[0m\n' "$((SECONDS - started))"
