# vrrp-lxd: `make up` prepares the host and brings the topology up; `make test`
# runs every test. Both are safe to run again.
SHELL := /bin/bash
.DEFAULT_GOAL := help

TARGET   := x86_64-unknown-linux-musl
RELEASE  := target/$(TARGET)/release
VENV     ?= /opt/vrrp-lxd/venv
export PATH := $(VENV)/bin:$(HOME)/.cargo/bin:$(PATH)
MODULES  := lxd_instance lxd_cluster_member haproxy_backend keepalived_vrrp apache_site dns_zone resolver
LB_COUNT ?= 2
WEB_COUNT ?= 2
# BACKEND=incus: Incus instead of LXD (scripts/setup-incus.sh). Its bridge has
# its own subnet beside LXD's, so the topology gets a VIP there.
BACKEND ?= lxd
INCUS_VIP ?= 10.234.0.10

# The goal the host check (scripts/preflight.sh) sizes free disk for.
PREFLIGHT_FOR := $(if $(filter test bench molecule hosts-up cluster-up,$(MAKECMDGOALS)),test,up)

.PHONY: help preflight setup build build-aarch64 up test lint molecule bench soak collection clean down hosts-up hosts-down cluster-up cluster-down

help:
	@echo "make up          prepare this host (LXD, toolchain, venv, image), build, deploy $(LB_COUNT) LB + $(WEB_COUNT) web"
	@echo "BACKEND=incus make up   the same on Incus (LXD's community fork) beside or instead of LXD"
	@echo "make test        lint, unit, protocol-differential, integration and end-to-end tests on the real LXD, molecule"
	@echo "make down        delete the topology made by make up"
	@echo "make bench       benchmarks (failover, growth, inventory, module cost); prints a table"
	@echo "make soak        10 min of steady load through the VIP while a seeded schedule breaks and heals"
	@echo "                 the topology, quiet then with CPU burners (SOAK_MIN=, SOAK_SEED=, KEEP=1)"
	@echo "make setup       only prepare this host (every step checks before it acts)"
	@echo "make build       only build the static binaries into dist/"
	@echo "make build-aarch64 the same binaries for arm64 hosts into dist/aarch64/ (a cross build;"
	@echo "                 make collection then ships both, make test runs them under qemu-user)"
	@echo "make lint        rustfmt, clippy (no function over 100 lines) and unused dependencies (cargo-machete)"
	@echo "make molecule    the molecule scenarios default and scale"
	@echo "make collection  the vrrp_lxd.ha collection tarball (binaries inside)"
	@echo "make hosts-up    two nested LXD hosts on a LAN bridge (macvlan, HTTPS, pinned certificates),"
	@echo "                 then $(LB_COUNT) LB + $(WEB_COUNT) web spread over both"
	@echo "make hosts-down  remove them (make down does too)"
	@echo "make cluster-up  three nested LXD hosts joined as one LXD cluster (one HTTPS endpoint),"
	@echo "                 then $(LB_COUNT) LB + $(WEB_COUNT) web spread over its members"
	@echo "make cluster-down remove it (make down does too)"
	@echo "make clean       remove dist/"
	@echo "make preflight   only check this host (root, OS, Rust, free disk, LXD answering); changes nothing"
	@echo "make help        this list"
	@echo ""
	@echo "After make up, put the Ansible venv on PATH to run the playbooks yourself:"
	@echo "  export PATH=$(VENV)/bin:\$$PATH"

preflight:
	@rc=0; bash scripts/preflight.sh host $(PREFLIGHT_FOR) || rc=1; \
	  bash scripts/preflight.sh lxd $(PREFLIGHT_FOR) || rc=1; exit $$rc

setup:
	@bash scripts/preflight.sh host $(PREFLIGHT_FOR)
	@bash scripts/setup-host.sh

build:
	@echo "==> building static binaries ($(TARGET))"
	cargo build --release --target $(TARGET) --workspace --bins
	@mkdir -p dist/library dist/bin
	@for m in $(MODULES); do \
	  install -m 0755 $(RELEASE)/$$m dist/library/$$m; \
	  if [ -f modules/$$m/$$m.yml ]; then install -m 0644 modules/$$m/$$m.yml dist/library/$$m.yml; fi; \
	done
	@install -m 0755 $(RELEASE)/lxd_inventory dist/bin/lxd_inventory
	@install -m 0755 $(RELEASE)/vrrp-probe dist/bin/vrrp-probe
	@ls -l dist/library dist/bin | awk 'NF>5 {printf "    %-20s %8d bytes\n", $$9, $$5}'

build-aarch64:
	@echo "==> building static binaries (aarch64-unknown-linux-gnu)"
	@bash scripts/build-aarch64.sh

up: setup build
ifeq ($(BACKEND),incus)
	VRRP_BACKEND=incus ansible-playbook playbooks/site.yml -e lb_count=$(LB_COUNT) -e web_count=$(WEB_COUNT) -e vrrp_vip=$(INCUS_VIP)
else
	@bash scripts/preflight.sh lxd up
	@bash scripts/deploy.sh
endif

down:
	@bash scripts/teardown.sh

test: setup build
	@bash scripts/preflight.sh lxd test
	@bash scripts/test.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --workspace --lib --bins -- -D clippy::too_many_lines
	@if command -v cargo-machete >/dev/null; then cargo machete --skip-target-dir; \
	else echo "unused dependencies not checked: cargo-machete is not installed (cargo install --locked cargo-machete --version 0.9.2)"; fi

molecule: setup build
	molecule test -s default
	molecule test -s scale

bench: setup build
	@bash bench/run.sh

soak: setup build
	@BENCH_ONLY=soak BENCH_SOAK_MIN=$(or $(SOAK_MIN),10) BENCH_SOAK_SEED=$(or $(SOAK_SEED),1) bash bench/run.sh

collection: build
	@bash scripts/build-collection.sh

hosts-up: setup build
	@bash scripts/multihost/up.sh
	@bash scripts/multihost/deploy.sh

hosts-down:
	@bash scripts/multihost/down.sh

cluster-up: setup build
	@MH_CLUSTER=1 bash scripts/multihost/up.sh
	@MH_CLUSTER=1 bash scripts/multihost/deploy.sh

cluster-down:
	@MH_CLUSTER=1 bash scripts/multihost/down.sh

clean:
	rm -rf dist
