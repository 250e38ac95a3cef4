//! Test support shared by every integration test: containers on the project's
//! own LXD bridge, real `ansible-playbook` runs of our binaries, and a bounded
//! HTTP probe that only talks to addresses routed through that bridge.
//!
//! Tests need the host prepared by `scripts/setup-host.sh` and the binaries
//! built by `make build`; without them they fail with a message saying so.

pub mod ansible;
pub mod cluster;
pub mod container;
pub mod dns;
pub mod https;
pub mod multihost;
pub mod probe;
pub mod sidecar;
pub mod topology;

use std::path::PathBuf;

pub use container::{Container, LaunchOpts};
pub use probe::{Probe, Report};

/// The repository root.
pub fn project_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// A playbook of `testbed/playbooks/`: scenarios the tests and the benchmarks
/// share.
pub fn scenario_playbook(name: &str) -> PathBuf {
    let path = project_root().join("testbed/playbooks").join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// The LXD bridge the project owns (`VRRP_BRIDGE`, default `vrrpbr0`).
pub fn bridge() -> String {
    env_or("VRRP_BRIDGE", "vrrpbr0")
}

/// The project bridge's own address with its prefix (`VRRP_BRIDGE_ADDR`,
/// default `10.231.0.1/24`, as scripts/env.sh sets it).
pub fn bridge_address() -> String {
    env_or("VRRP_BRIDGE_ADDR", "10.231.0.1/24")
}

/// Whether the tests drive Incus instead of LXD (`VRRP_BACKEND=incus`, as
/// scripts/env.sh sets it from `BACKEND`): the binaries and the connection
/// plugin read the same variable.
pub fn backend_is_incus() -> bool {
    std::env::var("VRRP_BACKEND").is_ok_and(|b| b.trim().eq_ignore_ascii_case("incus"))
}

/// How long one `incus` command of the tests may take.
pub const INCUS_CLI_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

pub fn image() -> String {
    env_or("VRRP_IMAGE", "vrrp-lxd/bookworm")
}

pub fn profile() -> String {
    env_or("VRRP_PROFILE", "vrrp-lxd")
}

/// Every module binary `make build` puts into `dist/library` (its MODULES).
pub const MODULES: [&str; 7] = [
    "lxd_instance",
    "lxd_cluster_member",
    "haproxy_backend",
    "keepalived_vrrp",
    "apache_site",
    "dns_zone",
    "resolver",
];

/// The Ansible venv made by the set-up script.
pub fn venv_bin(tool: &str) -> PathBuf {
    PathBuf::from(env_or("VRRP_VENV", "/opt/vrrp-lxd/venv"))
        .join("bin")
        .join(tool)
}

/// `dist/`, where `make build` puts the binaries (override with `VRRP_DIST`).
pub fn dist_dir() -> PathBuf {
    std::env::var_os("VRRP_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("dist"))
}

pub fn library_dir() -> PathBuf {
    dist_dir().join("library")
}

/// A built module binary; panics with the fix when it is missing.
pub fn module_binary(name: &str) -> PathBuf {
    let path = library_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make build` first",
        path.display()
    );
    path
}

/// A built helper binary in `dist/bin` (`lxd_inventory`, `vrrp-probe`).
pub fn dist_binary(name: &str) -> PathBuf {
    let path = dist_dir().join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make build` first",
        path.display()
    );
    path
}

/// Whether test instances are kept for debugging (`KEEP=1`).
pub fn keep() -> bool {
    std::env::var("KEEP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// A name no other test (in this or another process) uses: `prefix-<pid>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let prefix = prefix.trim_end_matches('-');
    format!("{prefix}-{}-{n}", std::process::id())
}
