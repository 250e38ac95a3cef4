//! Build the script-inventory JSON from LXD's instance list. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::config::{Config, Connection, Family};
use crate::instance::Instance;

/// A group: its hosts and its variables.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Group {
    pub hosts: BTreeSet<String>,
    pub vars: Map<String, Value>,
}

/// The whole inventory: groups and per-host variables.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Inventory {
    pub groups: BTreeMap<String, Group>,
    pub hostvars: BTreeMap<String, Map<String, Value>>,
}

/// Ansible's group-name rule (`to_safe_group_name` with
/// `INVALID_VARIABLE_NAMES = ^[\d\W]|[^\w]`): every character that is not a
/// letter, digit or `_` becomes `_`, and so does a leading digit.
pub fn safe_name(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            let word = c.is_alphanumeric() || c == '_';
            if !word || (i == 0 && c.is_numeric()) {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The first address of `family` with global scope on the first interface of
/// `interfaces` that has one.
pub fn pick_address<'a>(
    inst: &'a Instance,
    interfaces: &[String],
    family: Family,
) -> Option<&'a str> {
    let net = inst.network();
    interfaces.iter().find_map(|name| {
        net.get(name)?
            .addresses
            .iter()
            .find(|a| a.family == family.as_str() && a.scope == "global")
            .map(|a| a.address.as_str())
    })
}

impl Inventory {
    /// Build the inventory of `instances` (one `recursion=2` answer) under `cfg`.
    pub fn build(instances: &[Instance], cfg: &Config) -> Self {
        let mut inv = Self::default();
        let rules = &cfg.groups;
        let p = cfg.vars_prefix.as_str();
        let by = |kind: &str| rules.by.iter().any(|b| b == kind);

        for inst in instances {
            if !cfg.type_filter.matches(&inst.kind) {
                continue;
            }
            let status = inst.status().to_lowercase();
            if !cfg.state.is_empty() && !cfg.state.iter().any(|s| s.eq_ignore_ascii_case(&status)) {
                continue;
            }
            let running = inst.is_running();
            let name = inst.name.clone();
            let mut vars = Map::new();

            let address = running
                .then(|| pick_address(inst, &cfg.interface, cfg.family))
                .flatten();
            if let Some(a) = address {
                vars.insert("ansible_host".into(), a.into());
            }
            if cfg.connection == Connection::Lxd {
                vars.insert("ansible_lxd_host".into(), name.clone().into());
            }
            if rules.all.is_empty() {
                vars.extend(connection_vars(cfg));
            }
            let project = if inst.project.is_empty() {
                &cfg.project
            } else {
                &inst.project
            };
            vars.insert(format!("{p}status"), status.clone().into());
            vars.insert(format!("{p}type"), inst.kind.clone().into());
            vars.insert(format!("{p}architecture"), inst.architecture.clone().into());
            if clustered(inst) {
                vars.insert(format!("{p}location"), inst.location.clone().into());
            }
            vars.insert(format!("{p}project"), project.clone().into());
            vars.insert(format!("{p}profiles"), json!(inst.profiles));
            if let Some(a) = address {
                vars.insert(format!("{p}ip"), a.into());
            }
            vars.insert(format!("{p}addresses"), addresses(inst));
            for (key, var) in [("image.os", "os"), ("image.release", "release")] {
                if let Some(v) = inst.config_value(key) {
                    vars.insert(format!("{p}{var}"), v.to_lowercase().into());
                }
            }
            for (key, value) in inst.user_config() {
                vars.insert(
                    format!("{p}user_{}", safe_name(&key["user.".len()..])),
                    value.into(),
                );
            }

            let mut groups: Vec<String> = Vec::new();
            groups.push(rules.all.clone());
            if by("status") {
                groups.push(format!("status_{status}"));
            }
            if !running {
                groups.push(rules.stopped.clone());
            }
            if running || rules.include_stopped {
                if let Some(list) = inst.config_value(&rules.key) {
                    groups.extend(
                        crate::config::split_list(list)
                            .into_iter()
                            .map(|g| format!("{}{g}", rules.prefix)),
                    );
                }
                for (key, prefix) in &rules.keyed {
                    if let Some(v) = inst.config_value(key).filter(|v| !v.is_empty()) {
                        groups.push(format!("{prefix}_{v}"));
                    }
                }
                if by("profile") {
                    groups.extend(inst.profiles.iter().map(|pr| format!("profile_{pr}")));
                }
                if by("type") && !inst.kind.is_empty() {
                    groups.push(format!("type_{}", inst.kind));
                }
                if by("location") && clustered(inst) {
                    groups.push(format!("location_{}", inst.location));
                }
                if by("project") {
                    groups.push(format!("project_{project}"));
                }
            }
            for g in groups.into_iter().filter(|g| !g.is_empty()) {
                inv.groups
                    .entry(safe_name(&g))
                    .or_default()
                    .hosts
                    .insert(name.clone());
            }
            inv.hostvars.insert(name, vars);
        }
        if !rules.all.is_empty() {
            inv.groups
                .entry(safe_name(&rules.all))
                .or_default()
                .vars
                .extend(connection_vars(cfg));
        }
        inv
    }

    /// The `--list` answer: every group, plus `_meta.hostvars`.
    pub fn list_json(&self) -> Value {
        let mut out = Map::new();
        for (name, g) in &self.groups {
            let mut obj = Map::new();
            obj.insert("hosts".into(), json!(g.hosts));
            if !g.vars.is_empty() {
                obj.insert("vars".into(), Value::Object(g.vars.clone()));
            }
            out.insert(name.clone(), Value::Object(obj));
        }
        let hostvars: Map<String, Value> = self
            .hostvars
            .iter()
            .map(|(h, v)| (h.clone(), Value::Object(v.clone())))
            .collect();
        out.insert("_meta".into(), json!({ "hostvars": hostvars }));
        Value::Object(out)
    }

    /// The `--host NAME` answer: that host's variables, `{}` for an unknown host.
    pub fn host_json(&self, name: &str) -> Value {
        Value::Object(self.hostvars.get(name).cloned().unwrap_or_default())
    }
}

/// The variables telling Ansible how to reach the instances.
fn connection_vars(cfg: &Config) -> Map<String, Value> {
    let mut vars = Map::new();
    match cfg.connection {
        Connection::Lxd => {
            vars.insert("ansible_connection".into(), "community.general.lxd".into());
            if let Some(r) = &cfg.remote {
                vars.insert("ansible_lxd_remote".into(), r.clone().into());
            }
            if cfg.project != "default" {
                vars.insert("ansible_lxd_project".into(), cfg.project.clone().into());
            }
        }
        Connection::Ssh => {
            vars.insert("ansible_connection".into(), "ssh".into());
            if let Some(u) = &cfg.ssh_user {
                vars.insert("ansible_user".into(), u.clone().into());
            }
        }
    }
    vars
}

/// A standalone LXD reports its instances' location as `none`.
fn clustered(inst: &Instance) -> bool {
    !inst.location.is_empty() && inst.location != "none"
}

/// `{interface: ["address/prefix", ...]}` for every interface but loopback, in
/// LXD's order: compact, since Ansible pays for every value of every host.
fn addresses(inst: &Instance) -> Value {
    let map: Map<String, Value> = inst
        .network()
        .iter()
        .filter(|(_, n)| n.kind != "loopback")
        .map(|(nic, n)| {
            let list: Vec<Value> = n
                .addresses
                .iter()
                .map(|a| Value::String(format!("{}/{}", a.address, a.netmask)))
                .collect();
            (nic.clone(), Value::Array(list))
        })
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::parse_answer;

    const RUNNING: &str = include_str!("../tests/fixtures/instances_recursion2.json");
    const ONE_STOPPED: &str = include_str!("../tests/fixtures/instances_recursion2_stopped.json");

    fn build(answer: &str, cfg: &Config) -> Value {
        let instances = parse_answer(answer).expect("fixture parses");
        Inventory::build(&instances, cfg).list_json()
    }

    fn hosts(v: &Value, group: &str) -> Vec<String> {
        v[group]["hosts"]
            .as_array()
            .unwrap_or_else(|| panic!("no group {group} in {v:#}"))
            .iter()
            .filter_map(|h| h.as_str().map(String::from))
            .collect()
    }

    #[test]
    fn sanitises_group_names_like_ansible() {
        assert_eq!(safe_name("web-front"), "web_front");
        assert_eq!(safe_name("1st"), "_st");
        assert_eq!(safe_name("-x"), "_x");
        assert_eq!(safe_name("a.b c/d"), "a_b_c_d");
        assert_eq!(safe_name("ok_Name9"), "ok_Name9");
        assert_eq!(safe_name("café"), "café");
    }

    #[test]
    fn running_instances_from_a_real_answer() {
        let v = build(RUNNING, &Config::default());
        let hv = &v["_meta"]["hostvars"]["t-inv-x"];
        assert_eq!(hv["ansible_host"], "10.231.0.158");
        assert_eq!(hv["lxd_ip"], "10.231.0.158");
        assert_eq!(hv["ansible_lxd_host"], "t-inv-x");
        assert_eq!(hv["lxd_status"], "running");
        assert_eq!(hv["lxd_type"], "container");
        assert_eq!(hv["lxd_architecture"], "x86_64");
        assert!(hv.get("lxd_location").is_none(), "not clustered");
        assert_eq!(hv["lxd_project"], "default");
        assert_eq!(hv["lxd_profiles"], json!(["vrrp-lxd"]));
        assert_eq!(hv["lxd_os"], "debian");
        assert_eq!(hv["lxd_release"], "bookworm");
        assert_eq!(hv["lxd_user_ansible_groups"], "lb,web");
        assert_eq!(
            hv["lxd_addresses"],
            json!({"eth0": ["10.231.0.158/24", "fe80::216:3eff:fe7e:2565/64"]})
        );
        let y = &v["_meta"]["hostvars"]["t-inv-y"];
        assert_eq!(y["ansible_host"], "10.231.0.161");
        assert_eq!(y["lxd_user_role"], "backend");

        assert_eq!(hosts(&v, "lb"), ["t-inv-x"]);
        assert_eq!(hosts(&v, "web"), ["t-inv-x", "t-inv-y"]);
        assert_eq!(hosts(&v, "lxd"), ["t-inv-x", "t-inv-y"]);
        assert_eq!(hosts(&v, "profile_vrrp_lxd"), ["t-inv-x", "t-inv-y"]);
        assert_eq!(hosts(&v, "status_running"), ["t-inv-x", "t-inv-y"]);
        assert_eq!(hosts(&v, "type_container"), ["t-inv-x", "t-inv-y"]);
        assert_eq!(hosts(&v, "project_default"), ["t-inv-x", "t-inv-y"]);
        assert!(v.get("stopped").is_none(), "no stopped group when all run");
        assert!(
            v.get("location_none").is_none(),
            "no location group when not clustered"
        );
        assert_eq!(
            v["lxd"]["vars"],
            json!({"ansible_connection": "community.general.lxd"})
        );
    }

    #[test]
    fn stopped_instance_has_no_ansible_host_and_only_its_own_groups() {
        let v = build(ONE_STOPPED, &Config::default());
        let y = &v["_meta"]["hostvars"]["t-inv-y"];
        assert!(y.get("ansible_host").is_none(), "{y:#}");
        assert!(y.get("lxd_ip").is_none(), "{y:#}");
        assert_eq!(y["lxd_status"], "stopped");
        assert_eq!(y["lxd_addresses"], json!({}));
        assert_eq!(hosts(&v, "stopped"), ["t-inv-y"]);
        assert_eq!(hosts(&v, "status_stopped"), ["t-inv-y"]);
        assert_eq!(hosts(&v, "lxd"), ["t-inv-x", "t-inv-y"]);
        assert_eq!(hosts(&v, "web"), ["t-inv-x"]);
        assert_eq!(hosts(&v, "profile_vrrp_lxd"), ["t-inv-x"]);

        let mut cfg = Config::default();
        cfg.groups.stopped = "powered-off".into();
        cfg.groups.include_stopped = true;
        let v = build(ONE_STOPPED, &cfg);
        assert_eq!(hosts(&v, "powered_off"), ["t-inv-y"]);
        assert_eq!(hosts(&v, "web"), ["t-inv-x", "t-inv-y"]);
    }

    #[test]
    fn state_and_type_filters() {
        let mut cfg = Config {
            state: vec!["RUNNING".into()],
            ..Config::default()
        };
        let v = build(ONE_STOPPED, &cfg);
        assert_eq!(hosts(&v, "lxd"), ["t-inv-x"]);
        assert!(v["_meta"]["hostvars"].get("t-inv-y").is_none());
        cfg.state = vec!["stopped".into()];
        assert_eq!(hosts(&build(ONE_STOPPED, &cfg), "lxd"), ["t-inv-y"]);
        let cfg = Config {
            type_filter: crate::config::TypeFilter::VirtualMachine,
            ..Config::default()
        };
        assert_eq!(build(RUNNING, &cfg)["_meta"]["hostvars"], json!({}));
    }

    #[test]
    fn interface_and_family_choice() {
        let mut cfg = Config {
            interface: vec!["eth9".into(), "eth0".into()],
            ..Config::default()
        };
        let v = build(RUNNING, &cfg);
        assert_eq!(
            v["_meta"]["hostvars"]["t-inv-x"]["ansible_host"],
            "10.231.0.158"
        );
        cfg.interface = vec!["eth9".into()];
        let v = build(RUNNING, &cfg);
        assert!(v["_meta"]["hostvars"]["t-inv-x"]
            .get("ansible_host")
            .is_none());
        // Only link-local IPv6 in the capture: no global inet6 address to use.
        cfg.interface = vec!["eth0".into()];
        cfg.family = Family::Inet6;
        let v = build(RUNNING, &cfg);
        assert!(v["_meta"]["hostvars"]["t-inv-x"]
            .get("ansible_host")
            .is_none());
    }

    #[test]
    fn ssh_connection_remote_project_and_custom_groups() {
        let mut cfg = Config {
            connection: Connection::Ssh,
            ssh_user: Some("debian".into()),
            ..Config::default()
        };
        cfg.groups.by = vec!["status".into()];
        cfg.groups.prefix = "role_".into();
        cfg.groups.keyed.insert("user.role".into(), "tier".into());
        let v = build(RUNNING, &cfg);
        assert_eq!(
            v["lxd"]["vars"],
            json!({"ansible_connection": "ssh", "ansible_user": "debian"})
        );
        assert!(v["_meta"]["hostvars"]["t-inv-x"]
            .get("ansible_lxd_host")
            .is_none());
        assert_eq!(hosts(&v, "role_web"), ["t-inv-x", "t-inv-y"]);
        assert_eq!(hosts(&v, "tier_backend"), ["t-inv-y"]);
        assert!(v.get("profile_vrrp_lxd").is_none());
        assert!(v.get("type_container").is_none());

        let mut cfg = Config {
            remote: Some("cluster".into()),
            project: "prod".into(),
            ..Config::default()
        };
        cfg.groups.all = String::new();
        let v = build(RUNNING, &cfg);
        let hv = &v["_meta"]["hostvars"]["t-inv-x"];
        assert_eq!(hv["ansible_connection"], "community.general.lxd");
        assert_eq!(hv["ansible_lxd_remote"], "cluster");
        assert_eq!(hv["ansible_lxd_project"], "prod");
        assert!(v.get("lxd").is_none());
    }

    #[test]
    fn groups_key_with_odd_names_and_blanks() {
        let answer = r#"{"metadata": [
            {"name": "a", "status": "Running", "type": "container", "location": "node-1",
             "project": "default", "profiles": ["default"],
             "config": {"user.ansible.groups": " web-front , ,2nd,lb ",
                        "user.user-data": "password: hunter2"},
             "expanded_config": null, "state": null}
        ]}"#;
        let v = build(answer, &Config::default());
        // cloud-init's legacy key holds secrets: never a host var.
        assert!(!v.to_string().contains("hunter2"), "{v}");
        assert_eq!(hosts(&v, "web_front"), ["a"]);
        assert_eq!(hosts(&v, "_nd"), ["a"]);
        assert_eq!(hosts(&v, "lb"), ["a"]);
        assert_eq!(hosts(&v, "location_node_1"), ["a"]);
        assert_eq!(v["_meta"]["hostvars"]["a"]["lxd_location"], "node-1");
        assert_eq!(
            v["_meta"]["hostvars"]["a"]["lxd_user_ansible_groups"],
            " web-front , ,2nd,lb "
        );
    }

    #[test]
    fn host_answer_matches_list_hostvars() {
        let instances = parse_answer(RUNNING).expect("parses");
        let inv = Inventory::build(&instances, &Config::default());
        assert_eq!(
            inv.host_json("t-inv-y"),
            inv.list_json()["_meta"]["hostvars"]["t-inv-y"]
        );
        assert_eq!(inv.host_json("nope"), json!({}));
    }
}
