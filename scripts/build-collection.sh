#!/usr/bin/env bash
# Builds the vrrp_lxd.ha collection tarball into dist/ (make collection).
#
# Assembles a staging directory from:
#   collection/            galaxy.yml, README.md, meta/runtime.yml, the inventory plugin,
#                          changelogs/ (CHANGELOG.rst is made from them), tests/sanity/
#   dist/library/<m>       module binaries   -> plugins/modules/<m>      (0755)
#   dist/library/<m>.yml   ansible-doc docs  -> plugins/modules/<m>.yml  (sidecar)
#   dist/bin/lxd_inventory inventory binary  -> libexec/lxd_inventory
#   dist/aarch64/library/<m>, dist/aarch64/bin/lxd_inventory (make build-aarch64)
#                          arm64 builds      -> libexec/aarch64/ (only when dist/aarch64/
#                          exists; plugins/action/ runs them on aarch64 hosts)
#   roles/, playbooks/     copied; `ansible.legacy.<m>` becomes `<ns>.<coll>.<m>`
# then runs `ansible-galaxy collection build`. Safe to run again: the staging
# directory is rebuilt each time and the tarball of this version is replaced.
#
# Environment: VRRP_DIST (default dist/: where the binaries are and the tarball
# goes), COLLECTION_OUT (default $VRRP_DIST: where the tarball goes),
# VRRP_VENV (default /opt/vrrp-lxd/venv). Prints the tarball's path.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist="${VRRP_DIST:-$root/dist}"
out="${COLLECTION_OUT:-$dist}"
venv="${VRRP_VENV:-/opt/vrrp-lxd/venv}"
galaxy="$venv/bin/ansible-galaxy"
[[ -x "$galaxy" ]] || galaxy="$(command -v ansible-galaxy || true)"
modules=(lxd_instance lxd_cluster_member haproxy_backend keepalived_vrrp apache_site dns_zone resolver)

die() { echo "build-collection: $*" >&2; exit 1; }

[[ -n "$galaxy" ]] || die "ansible-galaxy not found (run scripts/setup-host.sh)"
field() { sed -n "s/^$1:[[:space:]]*\\([^[:space:]#]*\\).*/\\1/p" "$root/collection/galaxy.yml"; }
ns="$(field namespace)"; coll="$(field name)"; version="$(field version)"
[[ -n "$ns" && -n "$coll" && -n "$version" ]] || die "collection/galaxy.yml lacks namespace, name or version"

missing=()
for m in "${modules[@]}"; do
  [[ -x "$dist/library/$m" ]] || missing+=("$dist/library/$m")
  [[ -f "$dist/library/$m.yml" ]] || missing+=("$dist/library/$m.yml")
done
[[ -x "$dist/bin/lxd_inventory" ]] || missing+=("$dist/bin/lxd_inventory")
((${#missing[@]} == 0)) || die "missing (run \`make build\` first): ${missing[*]}"
# The arm64 builds are optional (a cross build: make build-aarch64); once
# dist/aarch64 exists it must hold all of them.
with_aarch64=0
if [[ -d "$dist/aarch64" ]]; then
  with_aarch64=1
  for b in "${modules[@]/#/library/}" bin/lxd_inventory; do
    [[ -x "$dist/aarch64/$b" ]] || missing+=("$dist/aarch64/$b")
  done
  ((${#missing[@]} == 0)) || die "missing (run \`make build-aarch64\` or remove $dist/aarch64): ${missing[*]}"
fi

stage="$(mktemp -d "${TMPDIR:-/tmp}/vrrp-lxd-collection.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
dest="$stage/ansible_collections/$ns/$coll"
# The inventory binary goes to libexec/, not bin/: ansible-test sanity lints
# every file in a collection's bin/ as a Python script.
mkdir -p "$dest/plugins/modules" "$dest/libexec"

cp -R "$root/collection/." "$dest/"

# Two ansible-test ignores per binary module, beside those in collection/tests/sanity/.
# validate-modules opens every file in plugins/modules as text: on a binary it
# stops with UnicodeDecodeError, so the binary is skipped and its sidecar is
# what validate-modules checks (schema, options, examples, return values).
for m in "${modules[@]}"; do
  install -m 0755 "$dist/library/$m" "$dest/plugins/modules/$m"
  install -m 0644 "$dist/library/$m.yml" "$dest/plugins/modules/$m.yml"
  for ignores in "$dest"/tests/sanity/ignore-*.txt; do
    [[ -f "$ignores" ]] || continue
    printf '%s\n' \
      "plugins/modules/$m validate-modules!skip  # static binary module: validate-modules reads every module as text and stops with UnicodeDecodeError; plugins/modules/$m.yml, its documentation, is validated" \
      "plugins/modules/$m.yml validate-modules:missing-gplv3-license  # Apache-2.0 (galaxy.yml), not GPLv3: validate-modules asks every plugin for a GPLv3 header" \
      >>"$ignores"
  done
done
install -m 0755 "$dist/bin/lxd_inventory" "$dest/libexec/lxd_inventory"
if ((with_aarch64)); then
  mkdir -p "$dest/libexec/aarch64"
  for m in "${modules[@]}"; do
    install -m 0755 "$dist/aarch64/library/$m" "$dest/libexec/aarch64/$m"
  done
  install -m 0755 "$dist/aarch64/bin/lxd_inventory" "$dest/libexec/aarch64/lxd_inventory"
fi

for d in roles playbooks; do
  if [[ -d "$root/$d" ]]; then
    cp -R "$root/$d" "$dest/$d"
  fi
done

# Plugins next to the playbooks (connection_plugins/, filter_plugins/, ...) are
# not loaded for playbooks run from a collection: they become collection plugins
# (plugins/connection/, ...), and the quoted names that select them become FQCNs.
plugin_names=()
filter_names=()
for d in "$dest"/playbooks/*_plugins; do
  [[ -d "$d" ]] || continue
  type="$(basename "$d")"; type="${type%_plugins}"
  mkdir -p "$dest/plugins/$type"
  for f in "$d"/*.py; do
    [[ -f "$f" ]] || continue
    install -m 0644 "$f" "$dest/plugins/$type/"
    if [[ "$type" == filter ]]; then
      # A file may define several filters: the names are the keys of the
      # dict its FilterModule.filters() returns.
      mapfile -t -O "${#filter_names[@]}" filter_names < <(python3 - "$f" <<'PY'
import ast, sys
for node in ast.walk(ast.parse(open(sys.argv[1]).read())):
    if isinstance(node, ast.FunctionDef) and node.name == "filters":
        for sub in ast.walk(node):
            if isinstance(sub, ast.Dict):
                for key in sub.keys:
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        print(key.value)
PY
)
    else
      plugin_names+=("$(basename "$f" .py)")
    fi
  done
  rm -rf "$d"
done
find "$dest" \( -name __pycache__ -o -name '*.pyc' \) -prune -exec rm -rf {} +

# In the repository the roles and playbooks find the binaries in the `library`
# path as ansible.legacy.<m>; inside the collection they are <ns>.<coll>.<m>.
alternation="$(IFS='|'; echo "${modules[*]}")"
targets=()
for d in roles playbooks; do if [[ -d "$dest/$d" ]]; then targets+=("$dest/$d"); fi; done
if ((${#targets[@]})); then
  find "${targets[@]}" -type f \( -name '*.yml' -o -name '*.yaml' -o -name '*.j2' \) \
    -exec sed -i -E "s/\\bansible\\.legacy\\.($alternation)\\b/$ns.$coll.\\1/g" {} +
  for name in "${plugin_names[@]}"; do
    find "${targets[@]}" -type f \( -name '*.yml' -o -name '*.yaml' \) \
      -exec sed -i -E "s/(['\"])$name(['\"])/\\1$ns.$coll.$name\\2/g; s/^(\\s*ansible_connection:\\s*)$name\\s*$/\\1$ns.$coll.$name/" {} +
  done
  # A filter (`| name(`, `map('name', ...)`) is called by its FQCN from a
  # collection's playbooks.
  for name in "${filter_names[@]}"; do
    find "${targets[@]}" -type f \( -name '*.yml' -o -name '*.yaml' \) \
      -exec sed -i -E "s/\\|(\\s*)$name\\b/|\\1$ns.$coll.$name/g; s/\\b(map|select|reject)\\((['\"])$name(['\"])/\\1(\\2$ns.$coll.$name\\3/g" {} +
  done
  if grep -rEn "\\bansible\\.legacy\\.($alternation)\\b" "${targets[@]}"; then
    die "references to ansible.legacy modules left after rewriting"
  fi
fi

# CHANGELOG.rst from changelogs/: the releases in changelog.yaml and, as this
# version, the fragments not released yet (`antsibull-changelog release` in
# collection/ at release time moves them into changelog.yaml).
changelog="$venv/bin/antsibull-changelog"
[[ -x "$changelog" ]] || changelog="$(command -v antsibull-changelog || true)"
[[ -n "$changelog" ]] || die "antsibull-changelog not found (run scripts/setup-host.sh)"
if compgen -G "$dest/changelogs/fragments/*.yml" >/dev/null; then
  (cd "$dest" && PATH="$venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$stage" "$changelog" release --version "$version" >&2)
else
  (cd "$dest" && PATH="$venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$stage" "$changelog" generate >&2)
fi
rm -f "$dest/changelogs/.plugin-cache.yaml"
[[ -s "$dest/CHANGELOG.rst" ]] || die "antsibull-changelog wrote no CHANGELOG.rst"

mkdir -p "$out"
"$galaxy" collection build "$dest" --output-path "$out" --force >/dev/null
tarball="$out/$ns-$coll-$version.tar.gz"
[[ -f "$tarball" ]] || die "ansible-galaxy did not produce $tarball"
echo "$tarball"
