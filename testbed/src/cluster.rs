//! The cluster test bed (`make cluster-up`): three LXD hosts nested in system
//! containers on a LAN bridge of their own, joined as one LXD cluster that a
//! controller reaches through one HTTPS endpoint with its client certificate
//! and the cluster's pinned certificate, as `scripts/multihost/up.sh`
//! (`MH_CLUSTER=1`) recorded them in `hosts.yml`.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::container::lxc;
use crate::env_or;

/// Where up.sh writes the cluster's hosts file and certificates.
pub fn etc_dir() -> PathBuf {
    PathBuf::from(env_or("MH_CLUSTER_ETC", "/etc/vrrp-lxd/cluster"))
}

pub fn hosts_file() -> PathBuf {
    etc_dir().join("hosts.yml")
}

/// The cluster as the topology settings name it (the one hosts.yml entry).
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterEntry {
    pub name: String,
    pub url: String,
    pub cluster: bool,
    pub server_cert_fingerprint: String,
    pub client_cert: String,
    pub client_key: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Lan {
    bridge: String,
}

#[derive(Debug, Deserialize)]
struct HostsFile {
    hosts: Vec<ClusterEntry>,
    lan: Lan,
}

/// One member as `/1.0/cluster/members?recursion=1` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    pub server_name: String,
    pub status: String,
    pub url: String,
}

/// The test bed's cluster. A member's name is also the name of the system
/// container that runs it on this machine.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub entry: ClusterEntry,
    /// The LAN bridge: every address a test sends to must be routed through it.
    pub bridge: String,
}

impl Cluster {
    /// The bed as up.sh left it; fails (not skips) when it is not up.
    pub fn get() -> Cluster {
        let path = hosts_file();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the cluster test bed is not up ({}: {e}): run `make cluster-up` (or MH_CLUSTER=1 scripts/multihost/up.sh)",
                path.display()
            )
        });
        let file: HostsFile =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let [entry]: [ClusterEntry; 1] = file
            .hosts
            .try_into()
            .unwrap_or_else(|h: Vec<_>| panic!("{}: {} entries, not one", path.display(), h.len()));
        assert!(
            entry.cluster,
            "{}: the entry is not a cluster",
            path.display()
        );
        let cluster = Cluster {
            entry,
            bridge: file.lan.bridge,
        };
        let address = cluster
            .entry
            .url
            .trim_start_matches("https://")
            .rsplit_once(':')
            .and_then(|(h, _)| h.parse().ok())
            .unwrap_or_else(|| panic!("no address in {}", cluster.entry.url));
        crate::probe::check_route(address, &cluster.bridge)
            .unwrap_or_else(|e| panic!("{}: {e}", cluster.entry.name));
        cluster
    }

    /// `lxc` against the cluster, run inside the first running member that
    /// answers (any member speaks for the whole cluster).
    pub fn lxc(&self, args: &[&str]) -> Output {
        let mut last = None;
        for m in self.member_containers() {
            let mut all = vec!["exec", m.as_str(), "--", "timeout", "60", "lxc"];
            all.extend_from_slice(args);
            let out = lxc(&all);
            if out.status.success() || out.status.code() != Some(255) {
                return out;
            }
            last = Some(out);
        }
        last.expect("the cluster has members")
    }

    /// The running member containers on this machine (cl-host-1, ...), by
    /// name order.
    pub fn member_containers(&self) -> Vec<String> {
        let out = lxc(&["list", "--format", "csv", "-c", "ns"]);
        let prefix = env_or("MH_CLUSTER_HOST_PREFIX", "cl-host-");
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(','))
            .filter(|(n, status)| n.starts_with(&prefix) && *status == "RUNNING")
            .map(|(n, _)| n.to_string())
            .collect();
        names.sort();
        names
    }

    /// `lxc query PATH` as JSON.
    pub fn query(&self, path: &str) -> serde_json::Value {
        let out = self.lxc(&["query", path]);
        assert!(
            out.status.success(),
            "lxc query {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("lxc query {path}: {e}"))
    }

    /// The members, in LXD's order.
    pub fn members(&self) -> Vec<Member> {
        serde_json::from_value(self.query("/1.0/cluster/members?recursion=1"))
            .expect("a member list")
    }

    /// Waits (bounded) until `member` has `status` (`Online`, `Evacuated`, `Offline`).
    pub fn wait_member(&self, member: &str, status: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            // While a lost member rejoins, `lxc query` can answer nothing at
            // all for a moment: ask again rather than fail.
            let out = self.lxc(&["query", "/1.0/cluster/members?recursion=1"]);
            let now = serde_json::from_slice::<Vec<Member>>(&out.stdout)
                .ok()
                .into_iter()
                .flatten()
                .find(|m| m.server_name == member)
                .map(|m| m.status);
            if now.as_deref() == Some(status) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{member} is {now:?}, not {status}, after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Instance name -> the member it is on, for names starting with `prefix`.
    pub fn placement(&self, prefix: &str) -> std::collections::BTreeMap<String, String> {
        self.query("/1.0/instances?recursion=1")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                let name = i["name"].as_str().filter(|n| n.starts_with(prefix))?;
                Some((name.to_string(), i["location"].as_str()?.to_string()))
            })
            .collect()
    }
}
