//! Waiting for what a started instance does on its own: DHCP addresses and
//! cloud-init's first boot.

use std::time::{Duration, Instant};

use ansible_module::Fail;
use anyhow::Result;
use lxd_api::{Client, Error as LxdError};
use serde_json::{Map, Value};

/// IPv4 addresses per interface (loopback left out), as
/// `community.general.lxd_container` returns them.
pub fn addresses(state: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(net) = state.get("network").and_then(Value::as_object) else {
        return out;
    };
    let mut names: Vec<&String> = net.keys().filter(|n| n.as_str() != "lo").collect();
    names.sort();
    for name in names {
        let list: Vec<Value> = net[name]
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|a| a.get("family").and_then(Value::as_str) == Some("inet"))
            .filter_map(|a| a.get("address").cloned())
            .collect();
        out.insert(name.clone(), Value::Array(list));
    }
    out
}

fn global_ipv4(state: &Value, iface: &str) -> Vec<String> {
    state
        .get("network")
        .and_then(|n| n.get(iface))
        .and_then(|i| i.get("addresses"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| a.get("family").and_then(Value::as_str) == Some("inet"))
        .filter(|a| a.get("scope").and_then(Value::as_str) == Some("global"))
        .filter_map(|a| a.get("address").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Whether the instance has what the wait asks for: a global IPv4 on each
/// interface in `ifaces`, or (without a list) on at least one interface.
pub fn ready(state: &Value, ifaces: Option<&[String]>) -> bool {
    match ifaces {
        Some(list) if !list.is_empty() => list.iter().all(|i| !global_ipv4(state, i).is_empty()),
        _ => {
            let names: Vec<String> = state
                .get("network")
                .and_then(Value::as_object)
                .map(|m| m.keys().filter(|k| k.as_str() != "lo").cloned().collect())
                .unwrap_or_default();
            names.iter().any(|i| !global_ipv4(state, i).is_empty())
        }
    }
}

/// The first global IPv4: eth0's when it has one, else the first interface's.
pub fn primary_ipv4(state: &Value) -> Option<String> {
    if let Some(a) = global_ipv4(state, "eth0").into_iter().next() {
        return Some(a);
    }
    let mut names: Vec<String> = state
        .get("network")
        .and_then(Value::as_object)
        .map(|m| m.keys().filter(|k| k.as_str() != "lo").cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .find_map(|i| global_ipv4(state, i).into_iter().next())
}

fn describe(state: &Value) -> String {
    let addrs = addresses(state);
    if addrs.is_empty() {
        return "it has no network interface besides lo".into();
    }
    let parts: Vec<String> = addrs
        .iter()
        .map(|(name, list)| {
            let l: Vec<&str> = list
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if l.is_empty() {
                format!("{name}: no IPv4")
            } else {
                format!("{name}: {}", l.join(", "))
            }
        })
        .collect();
    format!("interfaces seen: {}", parts.join("; "))
}

/// Polls the instance's state until it has its IPv4 address(es); fails with
/// a message naming the instance when `timeout` passes first.
pub fn ipv4(
    lxd: &Client,
    name: &str,
    project: Option<&str>,
    timeout: Duration,
    ifaces: Option<&[String]>,
) -> Result<Value> {
    let start = Instant::now();
    loop {
        let state = lxd.instance_state(name, project)?;
        let status = state.get("status").and_then(Value::as_str).unwrap_or("");
        if status != "Running" {
            return Err(Fail::new(format!(
                "instance {name} is {status} while waiting for its IPv4 address"
            ))
            .into());
        }
        if ready(&state, ifaces) {
            return Ok(state);
        }
        if start.elapsed() >= timeout {
            let wanted = match ifaces {
                Some(l) if !l.is_empty() => format!("on {}", l.join(", ")),
                _ => "on any interface".to_string(),
            };
            return Err(Fail::new(format!(
                "instance {name} got no global IPv4 address {wanted} within {} s ({})",
                timeout.as_secs(),
                describe(&state)
            ))
            .with("addresses", addresses(&state))
            .into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Where cloud-init reports its final stage: written once per boot, on tmpfs.
const CLOUD_INIT_RESULT: &str = "/run/cloud-init/result.json";

/// Whether cloud-init's result file says this boot's run finished without
/// errors. One file read, where `cloud-init status --wait` is an exec (about half
/// a second): converged re-runs find the file and skip the exec.
fn finished_cleanly(result: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(result) else {
        return false;
    };
    let empty = |key: &str| match v["v1"].get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.values().all(|x| x.as_array().is_some_and(Vec::is_empty)),
        Some(_) => false,
    };
    v["v1"].is_object() && empty("errors") && empty("recoverable_errors")
}

/// The result file's content. It is a symlink into /var/lib/cloud, and LXD
/// answers a symlink with the path it points to: one more read follows it.
fn read_result(lxd: &Client, name: &str, project: Option<&str>) -> Option<Vec<u8>> {
    let bytes = lxd.read_file(name, project, CLOUD_INIT_RESULT).ok()??;
    match std::str::from_utf8(&bytes).map(str::trim) {
        Ok(target) if target.starts_with('/') => lxd.read_file(name, project, target).ok()?,
        _ => Some(bytes),
    }
}

/// What `wait_for_cloud_init` found.
pub struct CloudInit {
    /// cloud-init's final status: `done`, or `degraded` (recoverable errors).
    pub status: String,
    pub warning: Option<String>,
    /// How it was found, for `log_verbose`.
    pub source: &'static str,
}

/// Runs `cloud-init status --wait` in the instance; returns cloud-init's final
/// status (`done`, or `degraded` for recoverable errors: a warning, not a
/// failure) and fails when cloud-init reports an error, is missing, or does
/// not finish in time.
pub fn cloud_init(
    lxd: &Client,
    name: &str,
    project: Option<&str>,
    timeout: Duration,
) -> Result<CloudInit> {
    if read_result(lxd, name, project).is_some_and(|r| finished_cleanly(&r)) {
        return Ok(CloudInit {
            status: "done".into(),
            warning: None,
            source: CLOUD_INIT_RESULT,
        });
    }
    let out = match lxd.exec(name, project, &["cloud-init", "status", "--wait"], timeout) {
        Ok(o) => o,
        Err(LxdError::Timeout { .. }) => {
            return Err(Fail::new(format!(
                "cloud-init did not finish within {} s in instance {name}",
                timeout.as_secs()
            ))
            .into())
        }
        Err(e) if e.to_string().contains("not found") => {
            return Err(Fail::new(format!(
                "wait_for_cloud_init: cloud-init is not installed in instance {name} ({e})"
            ))
            .into())
        }
        Err(e) => return Err(e.into()),
    };
    let text = format!("{}{}", out.stdout, out.stderr);
    let status = text
        .lines()
        .rev()
        .find_map(|l| {
            l.trim()
                .strip_prefix("status:")
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let source = "cloud-init status --wait";
    match out.return_code {
        0 => Ok(CloudInit {
            status: if status.is_empty() {
                "done".into()
            } else {
                status
            },
            warning: None,
            source,
        }),
        2 => Ok(CloudInit {
            status: "degraded".into(),
            warning: Some(format!(
                "cloud-init in instance {name} finished with recoverable errors: {}",
                text.trim()
            )),
            source,
        }),
        126 | 127 => Err(Fail::new(format!(
            "wait_for_cloud_init: cloud-init is not installed in instance {name}"
        ))
        .into()),
        rc => {
            let tail: Vec<&str> = text.trim().lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(Fail::new(format!(
                "cloud-init failed in instance {name} (status {}, exit {rc}): {}; see `cloud-init status --long` and /var/log/cloud-init.log in the instance",
                if status.is_empty() { "unknown" } else { &status },
                tail.join(" ")
            ))
            .with("rc", rc)
            .with("stdout", &out.stdout)
            .with("stderr", &out.stderr)
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cloud_init_result_file() {
        let clean = br#"{"v1": {"datasource": "DataSourceLXD", "errors": []}}"#;
        assert!(finished_cleanly(clean));
        let newer = br#"{"v1": {"datasource": "DataSourceLXD", "errors": [],
            "recoverable_errors": {"WARNING": []}}}"#;
        assert!(finished_cleanly(newer));
        let failed = br#"{"v1": {"errors": ["('scripts_user', RuntimeError())"]}}"#;
        assert!(!finished_cleanly(failed));
        let degraded = br#"{"v1": {"errors": [], "recoverable_errors": {"WARNING": ["x"]}}}"#;
        assert!(!finished_cleanly(degraded));
        assert!(!finished_cleanly(b"{}"));
        assert!(!finished_cleanly(b"not json"));
    }

    fn state() -> Value {
        json!({"status": "Running", "network": {
            "lo": {"addresses": [{"family": "inet", "address": "127.0.0.1", "scope": "local"}]},
            "eth0": {"addresses": [
                {"family": "inet", "address": "10.231.0.150", "scope": "global"},
                {"family": "inet6", "address": "fe80::1", "scope": "link"}]},
            "eth1": {"addresses": []}
        }})
    }

    #[test]
    fn addresses_per_interface_without_lo() {
        assert_eq!(
            Value::Object(addresses(&state())),
            json!({"eth0": ["10.231.0.150"], "eth1": []})
        );
        assert_eq!(primary_ipv4(&state()).as_deref(), Some("10.231.0.150"));
    }

    #[test]
    fn one_interface_is_enough_unless_listed() {
        assert!(ready(&state(), None));
        assert!(ready(&state(), Some(&["eth0".into()])));
        assert!(!ready(&state(), Some(&["eth0".into(), "eth1".into()])));
        assert!(!ready(&json!({"network": {"lo": {}}}), None));
    }

    #[test]
    fn description_names_interfaces() {
        assert_eq!(
            describe(&json!({"network": {"lo": {}}})),
            "it has no network interface besides lo"
        );
        assert_eq!(
            describe(&state()),
            "interfaces seen: eth0: 10.231.0.150; eth1: no IPv4"
        );
    }
}
