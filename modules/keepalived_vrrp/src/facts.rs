//! What keepalived says about its instances right now, from its own dumps: the
//! JSON dump (`keepalived --signum=JSON`, /tmp/keepalived.json) where keepalived
//! was built with it, else the data dump (SIGUSR1, /tmp/keepalived.data). Both
//! are written by keepalived's VRRP process into its /tmp, read here through
//! /proc/<pid>/root so a PrivateTmp= unit works too.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ansible_module::service;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceFacts {
    /// MASTER, BACKUP, FAULT, INIT; STOPPED when keepalived does not run.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_router_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_priority: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    pub virtual_ipaddress: Vec<String>,
    /// Whether every virtual address is on this host now.
    pub vip_holder: bool,
}

/// keepalived's state numbers (vrrp.h).
fn state_name(n: u64) -> &'static str {
    match n {
        0 => "INIT",
        1 => "BACKUP",
        2 => "MASTER",
        3 => "FAULT",
        _ => "UNKNOWN",
    }
}

/// How long `systemctl show` or `kill` may take here: facts are not worth
/// holding the task up.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

fn output(program: &str, args: &[&str]) -> Option<String> {
    service::run_bounded(program, args, COMMAND_TIMEOUT)
        .ok()
        .map(|out| out.trim().to_string())
}

/// keepalived's main PID, if the unit runs.
pub fn keepalived_pid() -> Option<u32> {
    output(
        "systemctl",
        &["show", "-p", "MainPID", "--value", "keepalived.service"],
    )?
    .parse()
    .ok()
    .filter(|p| *p > 0)
}

/// Signals keepalived and waits for the dump file to appear and parse.
fn dump<T>(pid: u32, signal: &str, file: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    let path = PathBuf::from(format!("/proc/{pid}/root/tmp/{file}"));
    for _attempt in 0..2 {
        let _ = std::fs::remove_file(&path);
        output("kill", &["-s", signal, &pid.to_string()])?;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1500) {
            std::thread::sleep(Duration::from_millis(10));
            if let Ok(text) = std::fs::read_to_string(&path) {
                if let Some(v) = parse(&text) {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// Addresses of a `vips` entry ("10.0.0.10/24 dev eth0 scope global set").
fn vip_addr(entry: &str) -> Option<IpAddr> {
    entry.split(['/', ' ']).next()?.parse().ok()
}

pub fn parse_json(text: &str) -> Option<BTreeMap<String, InstanceFacts>> {
    let v: Value = serde_json::from_str(text).ok()?;
    let mut out = BTreeMap::new();
    for item in v.as_array()? {
        let d = &item["data"];
        let Some(name) = d["iname"].as_str() else {
            continue;
        };
        let vips: Vec<String> = d["vips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|e| e.split_whitespace().next())
            .map(str::to_string)
            .collect();
        out.insert(
            name.to_string(),
            InstanceFacts {
                state: state_name(d["state"].as_u64().unwrap_or(99)).to_string(),
                virtual_router_id: d["vrid"].as_u64(),
                priority: d["base_priority"].as_u64(),
                effective_priority: d["effective_priority"].as_u64(),
                interface: d["ifp_ifname"].as_str().map(str::to_string),
                virtual_ipaddress: vips,
                vip_holder: false,
            },
        );
    }
    Some(out)
}

/// The VRRP topology section of the data dump.
pub fn parse_data(text: &str) -> Option<BTreeMap<String, InstanceFacts>> {
    if !text.contains("------< Interfaces >") && !text.contains("------< VRRP Sockpool") {
        return None; // not complete yet
    }
    let mut out = BTreeMap::new();
    let mut current: Option<(String, InstanceFacts)> = None;
    let mut in_vips = false;
    for line in text.lines() {
        if line.starts_with("------<") {
            if let Some((n, f)) = current.take() {
                out.insert(n, f);
            }
            continue;
        }
        let t = line.trim();
        if let Some(name) = t.strip_prefix("VRRP Instance = ") {
            if let Some((n, f)) = current.take() {
                out.insert(n, f);
            }
            current = Some((
                name.to_string(),
                InstanceFacts {
                    state: "UNKNOWN".into(),
                    virtual_router_id: None,
                    priority: None,
                    effective_priority: None,
                    interface: None,
                    virtual_ipaddress: vec![],
                    vip_holder: false,
                },
            ));
            continue;
        }
        let Some((_, f)) = current.as_mut() else {
            continue;
        };
        if t.starts_with("Virtual IP (") {
            in_vips = true;
            continue;
        }
        if in_vips {
            if let Some(addr) = t
                .split_whitespace()
                .next()
                .filter(|w| vip_addr(w).is_some())
            {
                f.virtual_ipaddress.push(addr.to_string());
                continue;
            }
            in_vips = false;
        }
        let Some((k, v)) = t.split_once(" = ") else {
            continue;
        };
        match k {
            "State" => f.state = v.to_string(),
            "Virtual Router ID" => f.virtual_router_id = v.parse().ok(),
            "Priority" => f.priority = v.parse().ok(),
            "Effective priority" => f.effective_priority = v.parse().ok(),
            "Interface" if f.interface.is_none() => f.interface = Some(v.to_string()),
            _ => {}
        }
    }
    if let Some((n, f)) = current.take() {
        out.insert(n, f);
    }
    Some(out)
}

/// The running instances as keepalived reports them, or `None` when keepalived
/// does not run or does not answer.
pub fn running_instances() -> Option<BTreeMap<String, InstanceFacts>> {
    let pid = keepalived_pid()?;
    if let Some(sig) = output("keepalived", &["--signum=JSON"]).filter(|s| s.parse::<u32>().is_ok())
    {
        if let Some(v) = dump(pid, &sig, "keepalived.json", parse_json) {
            return Some(v);
        }
    }
    let sig = output("keepalived", &["--signum=DATA"]).unwrap_or_else(|| "USR1".into());
    dump(pid, &sig, "keepalived.data", parse_data)
}

/// Marks each instance that has all its addresses on this host.
pub fn mark_holders(instances: &mut BTreeMap<String, InstanceFacts>, local: &[IpAddr]) {
    for f in instances.values_mut() {
        let addrs: Vec<IpAddr> = f
            .virtual_ipaddress
            .iter()
            .filter_map(|v| vip_addr(v))
            .collect();
        f.vip_holder = !addrs.is_empty() && addrs.iter().all(|a| local.contains(a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"[{"data":{"iname":"VI_1","ifp_ifname":"eth0","vrid":120,"base_priority":100,
        "effective_priority":100,"state":2,"vips":["10.231.0.20\/24 dev eth0 scope global set"]},"stats":{}}]"#;

    const DATA: &str = "------< Global definitions >------\n Router ID = x\n------< VRRP Topology >------\n \
VRRP Instance = VI_1\n   VRRP Version = 3\n   State = FAULT\n   Interface = eth0\n   Virtual Router ID = 120\n   \
Priority = 100\n   Effective priority = 100\n   Virtual IP (1):\n     10.231.0.20/24 dev eth0 scope global set\n   \
fd_in 14, fd_out 15\n------< VRRP Sockpool >------\n";

    #[test]
    fn reads_the_json_dump() {
        let mut m = parse_json(JSON).expect("json");
        mark_holders(&mut m, &["10.231.0.20".parse().expect("ip")]);
        let f = &m["VI_1"];
        assert_eq!(f.state, "MASTER");
        assert_eq!(f.virtual_router_id, Some(120));
        assert_eq!(f.virtual_ipaddress, vec!["10.231.0.20/24".to_string()]);
        assert!(f.vip_holder);
        assert!(parse_json("[{\"data\":").is_none());
    }

    #[test]
    fn reads_the_data_dump() {
        let mut m = parse_data(DATA).expect("data");
        mark_holders(&mut m, &[]);
        let f = &m["VI_1"];
        assert_eq!(f.state, "FAULT");
        assert_eq!(f.priority, Some(100));
        assert_eq!(f.interface.as_deref(), Some("eth0"));
        assert_eq!(f.virtual_ipaddress, vec!["10.231.0.20/24".to_string()]);
        assert!(!f.vip_holder);
        assert!(parse_data("------< Global definitions >------\n").is_none());
    }
}
