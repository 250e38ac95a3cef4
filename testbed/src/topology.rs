//! A whole topology made by the project's playbooks on the local LXD, as a
//! user runs them (`ansible.cfg`, the inventory binary, our modules), under its
//! own name prefix, VIP and router id, so it never touches a topology made by
//! `make up`. Its instances are deleted when it is dropped (unless `KEEP=1`).

use crate::ansible::{Run, Runner};
use crate::container::lxc;
use crate::keep;

pub struct Topology {
    /// `t-<tag>-<pid>-`: every instance name starts with it.
    pub prefix: String,
    pub vip: String,
    pub vrid: String,
}

impl Topology {
    pub fn new(tag: &str, vip: &str, vrid: &str) -> Topology {
        Topology {
            prefix: format!("t-{tag}-{}-", std::process::id()),
            vip: vip.to_string(),
            vrid: vrid.to_string(),
        }
    }

    /// An instance's name: `lb-01` -> `t-<tag>-<pid>-lb-01`.
    pub fn name(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    /// The topology's DNS zone (what `vrrp_dns_zone` derives from the prefix).
    pub fn zone(&self) -> String {
        format!("{}.vrrp.internal", self.prefix.trim_end_matches('-'))
    }

    /// Runs one of `playbooks/` with the topology's variables and `extra`.
    pub fn playbook(&self, playbook: &str, extra: &[(&str, &str)]) -> Run {
        Runner::project()
            .extra_var("vrrp_prefix", &self.prefix)
            .extra_var("vrrp_vip", &self.vip)
            .extra_var("vrrp_vrid", &self.vrid)
            .playbook(playbook, extra)
    }

    pub fn instances(&self) -> Vec<String> {
        let out = lxc(&["list", "--format", "csv", "-c", "n"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|n| n.starts_with(&self.prefix))
            .map(str::to_string)
            .collect()
    }

    /// Runs `cmd` with `sh -c` in `instance`; panics when it fails.
    pub fn sh(&self, instance: &str, cmd: &str) -> String {
        let out = lxc(&["exec", instance, "--", "sh", "-c", cmd]);
        assert!(
            out.status.success(),
            "`{cmd}` on {instance}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The load balancers whose interface carries the VIP, read from the kernel.
    pub fn holders(&self) -> Vec<String> {
        self.instances()
            .into_iter()
            .filter(|n| n.starts_with(&self.name("lb-")))
            .filter(|n| {
                let out = lxc(&["exec", n, "--", "ip", "-4", "-o", "addr", "show"]);
                String::from_utf8_lossy(&out.stdout).contains(&format!("inet {}/", self.vip))
            })
            .collect()
    }

    /// The one load balancer holding the VIP; panics unless there is exactly one.
    pub fn holder(&self) -> String {
        let holders = self.holders();
        assert_eq!(
            holders.len(),
            1,
            "exactly one LB must hold the VIP: {holders:?}"
        );
        holders[0].clone()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if keep() {
            eprintln!("KEEP=1: leaving the {}* instances", self.prefix);
            return;
        }
        for name in self.instances() {
            let _ = lxc(&["delete", "-f", &name]);
        }
        let _ = std::fs::remove_dir_all(controller_dir(&self.prefix));
    }
}

/// What the playbooks keep on the controller for the topology named by
/// `prefix` (its generated secrets, CA and certificates):
/// `~/.config/vrrp-lxd/<prefix without the trailing dash>`.
pub fn controller_dir(prefix: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
        .join(".config/vrrp-lxd")
        .join(prefix.trim_end_matches('-'))
}
