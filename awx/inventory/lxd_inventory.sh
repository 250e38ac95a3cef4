#!/bin/sh
# Inventory source for AWX (a project file, run through Ansible's script
# inventory plugin): runs the lxd_inventory binary. The execution environment
# puts it in /usr/local/bin; in a checkout after `make build` it is dist/bin.
# Settings come from LXD_INVENTORY_* variables (the LXD credential and the
# inventory source's variables set them) or an lxd_inventory.yml file.
here=$(dirname "$0")
for bin in "${LXD_INVENTORY_BIN:-}" "$(command -v lxd_inventory 2>/dev/null)" "$here/../../dist/bin/lxd_inventory"; do
  if [ -n "$bin" ] && [ -x "$bin" ]; then
    exec "$bin" "$@"
  fi
done
echo "lxd_inventory: binary not found (not on PATH, no dist/bin/lxd_inventory; set LXD_INVENTORY_BIN)" >&2
exit 1
