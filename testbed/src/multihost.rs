//! The two-host test bed (`make hosts-up`): two LXD hosts nested in system
//! containers on a LAN bridge, reached over HTTPS with the controller's
//! client certificate and their pinned server certificates, as
//! `scripts/multihost/up.sh` recorded them in `hosts.yml`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::container::lxc;
use crate::{env_or, keep, unique_name};

/// The bridge that plays the LAN.
pub fn lan_bridge() -> String {
    env_or("MH_BRIDGE", "vrrplan0")
}

/// Where up.sh writes what a controller needs.
pub fn hosts_file() -> PathBuf {
    PathBuf::from(env_or("MH_ETC", "/etc/vrrp-lxd/multihost")).join("hosts.yml")
}

/// One LXD host as a controller reaches it.
#[derive(Debug, Clone, Deserialize)]
pub struct LxdHost {
    /// The host container's name on this machine, and the host's name.
    pub name: String,
    pub url: String,
    pub server_cert_fingerprint: String,
    pub client_cert: String,
    pub client_key: String,
    pub project: String,
    pub image: String,
    pub profiles: Vec<String>,
}

impl LxdHost {
    /// The host's address on the LAN (from its URL).
    pub fn address(&self) -> IpAddr {
        self.url
            .trim_start_matches("https://")
            .rsplit_once(':')
            .and_then(|(h, _)| h.parse().ok())
            .unwrap_or_else(|| panic!("{}: no address in {}", self.name, self.url))
    }

    /// `lxc` run inside the host against its own LXD.
    pub fn lxc(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["exec", self.name.as_str(), "--", "lxc"];
        all.extend_from_slice(args);
        lxc(&all)
    }
}

#[derive(Deserialize)]
struct HostsFile {
    hosts: Vec<LxdHost>,
}

/// The test bed's hosts; fails (not skips) when it is not up.
pub fn hosts() -> Vec<LxdHost> {
    let path = hosts_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the two-host test bed is not up ({}: {e}): run `make hosts-up`",
            path.display()
        )
    });
    let file: HostsFile =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for h in &file.hosts {
        crate::probe::check_route(h.address(), &lan_bridge())
            .unwrap_or_else(|e| panic!("{}: {e}", h.name));
    }
    file.hosts
}

/// An instance on one of the nested hosts, on the LAN through macvlan;
/// deleted when dropped (unless `KEEP=1`).
#[derive(Debug)]
pub struct NestedInstance {
    pub host: LxdHost,
    pub name: String,
    pub ipv4: Ipv4Addr,
}

impl NestedInstance {
    /// Launches from the host's copy of the project image with its profiles
    /// and waits (bounded) for a DHCP address from the LAN.
    pub fn launch(host: &LxdHost, prefix: &str) -> NestedInstance {
        let name = unique_name(prefix);
        let mut args = vec!["launch", host.image.as_str(), name.as_str(), "-q"];
        for p in &host.profiles {
            args.extend(["-p", p.as_str()]);
        }
        let out = host.lxc(&args);
        let mut instance = NestedInstance {
            host: host.clone(),
            name: name.clone(),
            ipv4: Ipv4Addr::UNSPECIFIED,
        };
        assert!(
            out.status.success(),
            "launching {name} on {}: {}",
            host.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(90) {
            let out = host.lxc(&["query", &format!("/1.0/instances/{name}/state")]);
            let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let found = state["network"]["eth0"]["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["family"] == "inet" && a["scope"] == "global")
                .and_then(|a| a["address"].as_str())
                .and_then(|s| s.parse().ok());
            if let Some(ip) = found {
                instance.ipv4 = ip;
                return instance;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!("{name} on {} got no DHCP address within 90 s", host.name);
    }
}

impl Drop for NestedInstance {
    fn drop(&mut self) {
        if !keep() {
            let _ = self.host.lxc(&["delete", "-f", &self.name]);
        }
    }
}
