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
        let lbs = self
            .instances()
            .into_iter()
            .filter(|n| n.starts_with(&self.name("lb-")));
        vip_holders(&self.vip, lbs, |n| {
            let mut args = vec!["exec", n.as_str(), "--"];
            args.extend(IP_ADDRS);
            String::from_utf8_lossy(&lxc(&args).stdout).into_owned()
        })
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

/// The command whose output [`vip_holders`] reads: the instance's IPv4
/// addresses, one interface address a line.
pub const IP_ADDRS: [&str; 5] = ["ip", "-4", "-o", "addr", "show"];

/// Those of `instances` whose interfaces carry `vip`, read from the kernel,
/// in their order: `ip_addrs` runs [`IP_ADDRS`] in one, however it is reached
/// (the local LXD, another host's, a container of a test).
pub fn vip_holders<T>(
    vip: &str,
    instances: impl IntoIterator<Item = T>,
    ip_addrs: impl Fn(&T) -> String,
) -> Vec<T> {
    // The address and its prefix length: 10.231.0.2 must not match 10.231.0.20.
    let needle = format!("inet {vip}/");
    instances
        .into_iter()
        .filter(|i| ip_addrs(i).contains(&needle))
        .collect()
}

/// What the playbooks keep on the controller for the topology named by
/// `prefix` (its generated secrets, CA and certificates):
/// `~/.config/vrrp-lxd/<prefix without the trailing dash>`.
pub fn controller_dir(prefix: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
        .join(".config/vrrp-lxd")
        .join(prefix.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::vip_holders;

    #[test]
    fn a_holder_carries_the_vip_itself_not_an_address_it_begins() {
        let addrs = |i: &usize| {
            [
                "2: eth0    inet 10.231.0.12/24 brd 10.231.0.255 scope global eth0",
                "2: eth0    inet 10.231.0.11/24 scope global eth0\n2: eth0    inet 10.231.0.20/24 scope global secondary eth0",
                "2: eth0    inet 10.231.0.200/24 scope global eth0",
                "",
            ][*i]
            .to_string()
        };
        assert_eq!(vip_holders("10.231.0.20", 0..4, addrs), vec![1]);
        assert_eq!(vip_holders("10.231.0.2", 0..4, addrs), Vec::<usize>::new());
    }
}
