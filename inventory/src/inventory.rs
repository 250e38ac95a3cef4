//! Build the script-inventory JSON from LXD's instance list. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::config::{Config, Connection, Family, LxdHost, HOST_GROUP_PREFIX};
use crate::instance::Instance;

/// The `all.vars` list naming the hosts left out (`skip_unreachable`).
pub const WARNINGS_VAR: &str = "lxd_inventory_warnings";

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
    /// Hosts left out (`skip_unreachable`), one line each.
    pub warnings: Vec<String>,
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

/// Whether `cfg`'s `type` and `state` filters let `inst` into the inventory.
pub fn is_listed(inst: &Instance, cfg: &Config) -> bool {
    cfg.type_filter.matches(&inst.kind)
        && (cfg.state.is_empty()
            || cfg
                .state
                .iter()
                .any(|s| s.eq_ignore_ascii_case(inst.status())))
}

/// What one LXD host answered: its instances, each with its state where the
/// inventory needs it (running instances).
#[derive(Debug, Clone)]
pub struct HostListing {
    pub host: LxdHost,
    pub instances: Vec<Instance>,
    /// The cluster's members when the host is a cluster (`cluster: true`),
    /// else empty.
    pub members: Vec<lxd_api::ClusterMember>,
}

/// The `all.vars` map of each cluster's members (`<vars_prefix>cluster_members`):
/// cluster name -> `[{name, status, message, roles, url}]`, in LXD's order. The
/// playbooks place instances on the members it lists.
pub const CLUSTER_MEMBERS_VAR: &str = "cluster_members";

/// Two hosts with an instance of the same name: Ansible host names are unique.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instance {instance:?} is on host {first} and on host {second}: Ansible host names must be unique (rename one, or read the hosts from separate inventories)")]
pub struct DuplicateInstance {
    pub instance: String,
    pub first: String,
    pub second: String,
}

impl Inventory {
    /// Build the inventory of `instances` (one host's listing) under
    /// `cfg`, as the first (usually only) host `cfg` describes.
    pub fn build(instances: &[Instance], cfg: &Config) -> Self {
        let mut inv = Self::default();
        if let Some(host) = cfg.lxd_hosts().first() {
            inv.add_host(host, instances, &[], cfg);
        }
        inv.finish(cfg, Vec::new());
        inv
    }

    /// Merge what several hosts answered; `warnings` (hosts left out) go to
    /// `all.vars.lxd_inventory_warnings`. An instance name on two hosts is an
    /// error naming both.
    pub fn merge(
        listings: &[HostListing],
        cfg: &Config,
        warnings: Vec<String>,
    ) -> Result<Self, DuplicateInstance> {
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for l in listings {
            for inst in &l.instances {
                if let Some(first) = owner.insert(&inst.name, &l.host.name) {
                    if first != l.host.name {
                        return Err(DuplicateInstance {
                            instance: inst.name.clone(),
                            first: first.to_owned(),
                            second: l.host.name.clone(),
                        });
                    }
                }
            }
        }
        let mut inv = Self::default();
        for l in listings {
            inv.add_host(&l.host, &l.instances, &l.members, cfg);
        }
        inv.finish(cfg, warnings);
        Ok(inv)
    }

    /// The connection variables of the `all` group, and the warnings.
    fn finish(&mut self, cfg: &Config, warnings: Vec<String>) {
        if !cfg.groups.all.is_empty() {
            self.groups
                .entry(safe_name(&cfg.groups.all))
                .or_default()
                .vars
                .extend(connection_vars(cfg));
        }
        // Hosts left out first, then what the listings themselves warn about.
        let mut all = warnings;
        all.append(&mut self.warnings);
        self.groups
            .entry("all".into())
            .or_default()
            .vars
            .insert(WARNINGS_VAR.into(), json!(all));
        self.warnings = all;
    }

    /// Add the instances of one host (and, for a cluster, its members).
    fn add_host(
        &mut self,
        host: &LxdHost,
        instances: &[Instance],
        members: &[lxd_api::ClusterMember],
        cfg: &Config,
    ) {
        let member_status: BTreeMap<&str, String> = members
            .iter()
            .map(|m| (m.server_name.as_str(), m.status.to_lowercase()))
            .collect();
        if host.cluster {
            self.add_cluster_members(host, members, cfg);
        }
        let host_group = (cfg.groups.groups_by("host") && !cfg.groups.all.is_empty())
            .then(|| safe_name(&format!("{HOST_GROUP_PREFIX}{}", host.name)));
        let host_vars = host_connection_vars(cfg, host);
        let mut listed = false;

        for inst in instances.iter().filter(|inst| is_listed(inst, cfg)) {
            listed = true;
            let project = if inst.project.is_empty() {
                &host.project
            } else {
                &inst.project
            };
            let mut vars = self.instance_vars(inst, host, project, &member_status, cfg);
            if host_group.is_none() {
                vars.extend(host_vars.clone());
            }
            let mut groups = instance_groups(inst, project, cfg);
            // Every listed instance, like `all`: the group carries how to reach them.
            if let Some(g) = &host_group {
                groups.push(g.clone());
            }
            for g in groups.into_iter().filter(|g| !g.is_empty()) {
                self.groups
                    .entry(safe_name(&g))
                    .or_default()
                    .hosts
                    .insert(inst.name.clone());
            }
            self.hostvars.insert(inst.name.clone(), vars);
        }
        if let (Some(g), true) = (host_group, listed) {
            self.groups.entry(g).or_default().vars.extend(host_vars);
        }
    }

    /// A cluster's members, with their status, in `all`'s variables; and a
    /// group per member, also while it has no instance, so that
    /// `hosts: location_<member>` names a member rather than nothing.
    fn add_cluster_members(
        &mut self,
        host: &LxdHost,
        members: &[lxd_api::ClusterMember],
        cfg: &Config,
    ) {
        let p = cfg.vars_prefix.as_str();
        let list: Vec<Value> = members
            .iter()
            .map(|m| {
                json!({"name": m.server_name, "status": m.status.to_lowercase(),
                       "message": m.message, "roles": m.roles, "url": m.url})
            })
            .collect();
        let all = self.groups.entry("all".into()).or_default();
        let map = all
            .vars
            .entry(format!("{p}{CLUSTER_MEMBERS_VAR}"))
            .or_insert_with(|| json!({}));
        if let Some(map) = map.as_object_mut() {
            map.insert(host.name.clone(), Value::Array(list));
        }
        if cfg.groups.groups_by("location") {
            for m in members {
                self.groups
                    .entry(safe_name(&format!("location_{}", m.server_name)))
                    .or_default();
            }
        }
    }

    /// An instance's host variables (without its host's connection ones);
    /// warns of an instance on a cluster member that is not online.
    fn instance_vars(
        &mut self,
        inst: &Instance,
        host: &LxdHost,
        project: &str,
        member_status: &BTreeMap<&str, String>,
        cfg: &Config,
    ) -> Map<String, Value> {
        let p = cfg.vars_prefix.as_str();
        let status = inst.status().to_lowercase();
        let mut vars = Map::new();
        let address = inst
            .is_running()
            .then(|| pick_address(inst, &cfg.interface, cfg.family))
            .flatten();
        if let Some(a) = address {
            vars.insert("ansible_host".into(), a.into());
        }
        if cfg.connection.through_lxd() {
            vars.insert("ansible_lxd_host".into(), inst.name.clone().into());
        }
        if cfg.groups.all.is_empty() {
            vars.extend(connection_vars(cfg));
        }
        vars.insert(format!("{p}host"), host.name.clone().into());
        vars.insert(format!("{p}status"), status.clone().into());
        vars.insert(format!("{p}type"), inst.kind.clone().into());
        vars.insert(format!("{p}architecture"), inst.architecture.clone().into());
        if clustered(inst) {
            vars.insert(format!("{p}location"), inst.location.clone().into());
            if let Some(st) = member_status.get(inst.location.as_str()) {
                vars.insert(format!("{p}location_status"), st.clone().into());
                // Offline (or blocked): LXD cannot say how the instance
                // is; it stays listed, under its last known status.
                // Until LXD has noticed (cluster.offline_threshold), the
                // member still reads online and the instance `error`.
                if st != "online" && st != "evacuated" {
                    self.warnings.push(format!(
                        "instance {} is on cluster member {} of {}, which is {st}",
                        inst.name, inst.location, host.name
                    ));
                } else if status == "error" {
                    self.warnings.push(format!(
                        "instance {} on cluster member {} of {} is in error (is the member reachable?)",
                        inst.name, inst.location, host.name
                    ));
                }
            }
        }
        vars.insert(format!("{p}project"), project.into());
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
        vars
    }

    /// The `--list` answer: every group, plus `_meta.hostvars`.
    pub fn list_json(&self) -> Value {
        let mut out = Map::new();
        for (name, g) in &self.groups {
            let mut obj = Map::new();
            if !g.hosts.is_empty() {
                obj.insert("hosts".into(), json!(g.hosts));
            }
            if !g.vars.is_empty() {
                obj.insert("vars".into(), Value::Object(g.vars.clone()));
            }
            // Ansible reads `{}` as a host of that name (a "malformed group").
            if obj.is_empty() {
                obj.insert("hosts".into(), json!([]));
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

/// The groups an instance is in by the grouping rules (not its host's group).
fn instance_groups(inst: &Instance, project: &str, cfg: &Config) -> Vec<String> {
    let rules = &cfg.groups;
    let by = |kind: &str| rules.groups_by(kind);
    let running = inst.is_running();
    let mut groups = vec![rules.all.clone()];
    if by("status") {
        groups.push(format!("status_{}", inst.status().to_lowercase()));
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
    groups
}

/// The variables telling Ansible how to reach the instances, the same for
/// every host.
fn connection_vars(cfg: &Config) -> Map<String, Value> {
    let mut vars = Map::new();
    match cfg.connection {
        Connection::Lxd => {
            vars.insert("ansible_connection".into(), "community.general.lxd".into());
        }
        Connection::LxdApi => {
            vars.insert("ansible_connection".into(), "lxd_api".into());
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

/// The connection variables that belong to one LXD host: its `lxc` remote, its
/// project, and for an HTTPS host what the `lxd_api` connection plugin needs
/// to reach it (URL, client certificate and key, pinned fingerprint). Nothing
/// for SSH.
fn host_connection_vars(cfg: &Config, host: &LxdHost) -> Map<String, Value> {
    let mut vars = Map::new();
    if !cfg.connection.through_lxd() {
        return vars;
    }
    if let Some(r) = &host.remote {
        vars.insert("ansible_lxd_remote".into(), r.clone().into());
    }
    if host.project != "default" {
        vars.insert("ansible_lxd_project".into(), host.project.clone().into());
    }
    if let Some(socket) = host.unix_socket() {
        vars.insert("ansible_lxd_socket".into(), socket.into());
    }
    if let Some(url) = host.https_url() {
        vars.insert("ansible_lxd_url".into(), url.into());
        let tls = host.tls();
        let path = |p: Option<std::path::PathBuf>| p.map(|p| p.display().to_string());
        if let Some(c) = path(tls.client_cert) {
            vars.insert("ansible_lxd_client_cert".into(), c.into());
        }
        if let Some(k) = path(tls.client_key) {
            vars.insert("ansible_lxd_client_key".into(), k.into());
        }
        if let Some(fp) = host
            .server_cert_fingerprint
            .as_deref()
            .and_then(crate::config::fingerprint_hex)
        {
            vars.insert("ansible_lxd_server_cert_fingerprint".into(), fp.into());
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
    use crate::config::GroupRules;
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

    /// What a second host answers: one running instance with a LAN address
    /// (macvlan) and one stopped.
    const OTHER_HOST: &str = r#"{"type": "sync", "metadata": [
        {"name": "mh-a", "status": "Running", "type": "container", "location": "none",
         "project": "default", "profiles": ["default", "macvlan"], "architecture": "x86_64",
         "config": {"user.ansible.groups": "web"}, "expanded_config": {},
         "state": {"status": "Running", "network": {
            "eth0": {"type": "broadcast", "addresses": [
                {"family": "inet", "address": "10.232.0.142", "netmask": "24", "scope": "global"}]},
            "lo": {"type": "loopback", "addresses": [
                {"family": "inet", "address": "127.0.0.1", "netmask": "8", "scope": "local"}]}}}},
        {"name": "mh-b", "status": "Stopped", "type": "container", "location": "none",
         "project": "default", "profiles": ["default", "macvlan"],
         "config": {}, "expanded_config": {}, "state": null}
    ]}"#;

    const FP: &str = "89586f7da7fb33238120cfbce39c80e64cd91b9172a9ba278f51508840ada43a";

    fn two_hosts() -> Config {
        Config::from_text(
            std::path::Path::new("x.yml"),
            &format!(
                "client_cert: /etc/mh/client.crt\nclient_key: /etc/mh/client.key\nhosts:\n\
                 - {{name: here}}\n\
                 - {{name: lxd-2, url: 'https://10.232.0.12', server_cert_fingerprint: 'SHA256:{}'}}\n",
                FP.to_uppercase()
            ),
        )
        .expect("parses")
    }

    fn listings(cfg: &Config, answers: &[&str]) -> Vec<HostListing> {
        cfg.lxd_hosts()
            .into_iter()
            .zip(answers)
            .map(|(host, a)| HostListing {
                host,
                instances: parse_answer(a).expect("parses"),
                members: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn two_hosts_merge_with_host_var_group_and_https_connection_vars() {
        let cfg = two_hosts();
        cfg.check().expect("valid");
        let inv = Inventory::merge(&listings(&cfg, &[RUNNING, OTHER_HOST]), &cfg, Vec::new())
            .expect("no duplicates");
        let v = inv.list_json();
        let hv = &v["_meta"]["hostvars"];
        for (name, host) in [
            ("t-inv-x", "here"),
            ("t-inv-y", "here"),
            ("mh-a", "lxd-2"),
            ("mh-b", "lxd-2"),
        ] {
            assert_eq!(hv[name]["lxd_host"], host, "{name}");
            assert_eq!(hv[name]["ansible_lxd_host"], name, "{name}");
            for var in ["ansible_lxd_url", "ansible_connection"] {
                assert!(hv[name].get(var).is_none(), "{name}: {var} is a group var");
            }
        }
        assert_eq!(hv["mh-a"]["ansible_host"], "10.232.0.142");
        assert_eq!(
            hv["mh-a"]["lxd_addresses"],
            json!({"eth0": ["10.232.0.142/24"]})
        );
        assert!(hv["mh-b"].get("ansible_host").is_none());

        assert_eq!(hosts(&v, "lxdhost_here"), ["t-inv-x", "t-inv-y"]);
        // The host group holds stopped instances too: it says how to reach them.
        assert_eq!(hosts(&v, "lxdhost_lxd_2"), ["mh-a", "mh-b"]);
        assert_eq!(hosts(&v, "web"), ["mh-a", "t-inv-x", "t-inv-y"]);
        assert_eq!(hosts(&v, "lxd"), ["mh-a", "mh-b", "t-inv-x", "t-inv-y"]);
        assert_eq!(hosts(&v, "stopped"), ["mh-b"]);
        assert_eq!(hosts(&v, "profile_macvlan"), ["mh-a"]);
        assert_eq!(
            v["lxd"]["vars"],
            json!({"ansible_connection": "community.general.lxd"})
        );
        // The unix-socket host needs nothing more; the HTTPS one what the
        // lxd_api connection plugin takes.
        assert!(v["lxdhost_here"].get("vars").is_none(), "{v:#}");
        assert_eq!(
            v["lxdhost_lxd_2"]["vars"],
            json!({
                "ansible_lxd_url": "https://10.232.0.12:8443",
                "ansible_lxd_client_cert": "/etc/mh/client.crt",
                "ansible_lxd_client_key": "/etc/mh/client.key",
                "ansible_lxd_server_cert_fingerprint": FP,
            })
        );
        assert_eq!(v["all"], json!({"vars": {"lxd_inventory_warnings": []}}));
        assert_eq!(inv.host_json("mh-a")["lxd_host"], "lxd-2");
    }

    #[test]
    fn same_instance_name_on_two_hosts_is_an_error_naming_both() {
        let cfg = two_hosts();
        let e = Inventory::merge(&listings(&cfg, &[OTHER_HOST, OTHER_HOST]), &cfg, Vec::new())
            .expect_err("duplicate");
        assert_eq!(
            e,
            DuplicateInstance {
                instance: "mh-a".into(),
                first: "here".into(),
                second: "lxd-2".into()
            }
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with("instance \"mh-a\" is on host here and on host lxd-2"),
            "{msg}"
        );
    }

    #[test]
    fn skipped_host_is_absent_and_named_in_all_vars() {
        let cfg = two_hosts();
        let mut all = listings(&cfg, &[RUNNING, OTHER_HOST]);
        all.truncate(1);
        let warning = "host lxd-2 (https://10.232.0.12:8443) did not answer within 5 s (timeout); its instances are left out (skip_unreachable)";
        let inv = Inventory::merge(&all, &cfg, vec![warning.into()]).expect("merges");
        let v = inv.list_json();
        assert_eq!(inv.warnings, [warning]);
        assert_eq!(v["all"]["vars"]["lxd_inventory_warnings"], json!([warning]));
        assert!(v.get("lxdhost_lxd_2").is_none());
        assert_eq!(hosts(&v, "lxd"), ["t-inv-x", "t-inv-y"]);
    }

    #[test]
    fn a_named_unix_socket_reaches_the_connection_plugin() {
        let mut cfg = Config::from_text(
            std::path::Path::new("x.yml"),
            "url: unix:///var/lib/incus/unix.socket\n",
        )
        .expect("parses");
        cfg.connection = Connection::LxdApi;
        let host = &cfg.lxd_hosts()[0];
        let vars = host_connection_vars(&cfg, host);
        assert_eq!(vars["ansible_lxd_socket"], "/var/lib/incus/unix.socket");
        assert!(vars.get("ansible_lxd_url").is_none());
        // Found automatically: the plugin finds the same socket itself.
        cfg.url = None;
        let host = &cfg.lxd_hosts()[0];
        assert!(host_connection_vars(&cfg, host).is_empty());
    }

    #[test]
    fn host_connection_vars_by_connection_kind_and_group_rules() {
        let mut cfg = two_hosts();
        cfg.hosts[1].project = Some("prod".into());
        cfg.hosts[1].remote = Some("two".into());
        cfg.connection = Connection::LxdApi;
        let v = Inventory::merge(&listings(&cfg, &[RUNNING, OTHER_HOST]), &cfg, Vec::new())
            .expect("merges")
            .list_json();
        assert_eq!(v["lxd"]["vars"], json!({"ansible_connection": "lxd_api"}));
        let g = &v["lxdhost_lxd_2"]["vars"];
        assert_eq!(g["ansible_lxd_remote"], "two");
        assert_eq!(g["ansible_lxd_project"], "prod");
        assert_eq!(g["ansible_lxd_server_cert_fingerprint"], FP);
        assert_eq!(v["_meta"]["hostvars"]["mh-a"]["lxd_project"], "default");
        assert_eq!(v["_meta"]["hostvars"]["mh-a"]["ansible_lxd_host"], "mh-a");

        // No host groups: the host's connection variables go on each instance.
        cfg.groups.by = vec!["status".into()];
        let v = Inventory::merge(&listings(&cfg, &[RUNNING, OTHER_HOST]), &cfg, Vec::new())
            .expect("merges")
            .list_json();
        assert!(v.get("lxdhost_lxd_2").is_none());
        let hv = &v["_meta"]["hostvars"];
        assert_eq!(hv["mh-b"]["ansible_lxd_url"], "https://10.232.0.12:8443");
        assert_eq!(hv["mh-b"]["lxd_host"], "lxd-2");
        assert!(hv["t-inv-x"].get("ansible_lxd_url").is_none());

        // SSH: nothing about LXD to connect with.
        cfg.groups.by = GroupRules::default().by;
        cfg.connection = Connection::Ssh;
        let v = Inventory::merge(&listings(&cfg, &[RUNNING, OTHER_HOST]), &cfg, Vec::new())
            .expect("merges")
            .list_json();
        assert!(v["lxdhost_lxd_2"].get("vars").is_none(), "{v:#}");
        assert!(v["_meta"]["hostvars"]["mh-a"]
            .get("ansible_lxd_host")
            .is_none());
        assert_eq!(hosts(&v, "lxdhost_lxd_2"), ["mh-a", "mh-b"]);
    }

    #[test]
    fn single_host_is_named_local_or_after_its_remote() {
        let v = build(RUNNING, &Config::default());
        assert_eq!(v["_meta"]["hostvars"]["t-inv-x"]["lxd_host"], "local");
        assert_eq!(hosts(&v, "lxdhost_local"), ["t-inv-x", "t-inv-y"]);
        let cfg = Config {
            remote: Some("lxd1".into()),
            project: "prod".into(),
            ..Config::default()
        };
        let v = build(RUNNING, &cfg);
        assert_eq!(v["_meta"]["hostvars"]["t-inv-x"]["lxd_host"], "lxd1");
        assert_eq!(
            v["lxdhost_lxd1"]["vars"],
            json!({"ansible_lxd_remote": "lxd1", "ansible_lxd_project": "prod"})
        );
    }

    const CLUSTER: &str = r#"{"type": "sync", "metadata": [
        {"name": "cl-lb-01", "status": "Running", "type": "container", "location": "cl-host-1",
         "project": "default", "profiles": ["default", "macvlan"], "architecture": "x86_64",
         "config": {"user.ansible.groups": "lb"}, "expanded_config": {},
         "state": {"status": "Running", "network": {"eth0": {"addresses": [
            {"family": "inet", "address": "10.233.0.150", "netmask": "24", "scope": "global"}]}}}},
        {"name": "cl-web-02", "status": "Error", "type": "container", "location": "cl-host-2",
         "project": "default", "profiles": ["default", "macvlan"], "architecture": "x86_64",
         "config": {"user.ansible.groups": "web"}, "expanded_config": {}, "state": null}
    ]}"#;

    fn member(name: &str, status: &str) -> lxd_api::ClusterMember {
        lxd_api::ClusterMember {
            server_name: name.into(),
            url: format!("https://{name}:8443"),
            status: status.into(),
            message: String::new(),
            roles: vec!["database".into()],
            database: true,
            failure_domain: "default".into(),
        }
    }

    #[test]
    fn cluster_members_groups_status_and_an_instance_on_an_offline_member() {
        let cfg = Config::from_text(
            std::path::Path::new("x.yml"),
            &format!(
                "hosts:\n- {{name: cl, cluster: true, url: 'https://10.233.0.11:8443', server_cert_fingerprint: '{FP}'}}\n"
            ),
        )
        .expect("parses");
        let mut l = listings(&cfg, &[CLUSTER]);
        l[0].members = vec![
            member("cl-host-1", "Online"),
            member("cl-host-2", "Offline"),
            member("cl-host-3", "Evacuated"),
        ];
        let inv = Inventory::merge(&l, &cfg, Vec::new()).expect("merges");
        let v = inv.list_json();
        let hv = &v["_meta"]["hostvars"];
        assert_eq!(hv["cl-lb-01"]["lxd_location"], "cl-host-1");
        assert_eq!(hv["cl-lb-01"]["lxd_location_status"], "online");
        assert_eq!(hv["cl-lb-01"]["lxd_host"], "cl");
        assert_eq!(hosts(&v, "location_cl_host_1"), ["cl-lb-01"]);
        // Every member has its group, an empty one too (written so that
        // Ansible reads a group, not a host).
        assert_eq!(v["location_cl_host_3"], json!({"hosts": []}));
        // On the offline member: listed, with its member's status, and named
        // in the warnings rather than dropped.
        assert_eq!(hv["cl-web-02"]["lxd_status"], "error");
        assert_eq!(hv["cl-web-02"]["lxd_location_status"], "offline");
        assert_eq!(hosts(&v, "stopped"), ["cl-web-02"]);
        assert_eq!(
            v["all"]["vars"][WARNINGS_VAR],
            json!(["instance cl-web-02 is on cluster member cl-host-2 of cl, which is offline"])
        );
        let members = &v["all"]["vars"]["lxd_cluster_members"]["cl"];
        assert_eq!(members[0]["name"], "cl-host-1");
        assert_eq!(members[1]["status"], "offline");
        assert_eq!(members[2]["status"], "evacuated");
    }

    #[test]
    fn hosts_without_cluster_have_no_member_variable() {
        let cfg = two_hosts();
        let v = Inventory::merge(&listings(&cfg, &[RUNNING, OTHER_HOST]), &cfg, Vec::new())
            .expect("merges")
            .list_json();
        assert!(v["all"]["vars"].get("lxd_cluster_members").is_none());
    }
}
