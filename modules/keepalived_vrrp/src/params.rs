//! The module's options: the argument spec (same shape as a Python module's) and
//! the typed view of the validated values.

use serde::{Deserialize, Deserializer};

pub const SPEC: &str = r#"{
  "argument_spec": {
    "name": {"type": "str", "required": true},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "virtual_router_id": {"type": "int", "aliases": ["vrid"]},
    "priority": {"type": "int", "default": 100},
    "initial_state": {"type": "str", "default": "BACKUP", "choices": ["MASTER", "BACKUP"]},
    "nopreempt": {"type": "bool", "default": false},
    "preempt_delay": {"type": "int"},
    "interface": {"type": "str"},
    "virtual_ipaddress": {"type": "list", "elements": "str", "aliases": ["vip", "vips"]},
    "advert_int": {"type": "float"},
    "vrrp_version": {"type": "int", "default": 3, "choices": [2, 3]},
    "unicast_src_ip": {"type": "str"},
    "unicast_peer": {"type": "list", "elements": "str", "default": []},
    "keep_unicast_peers": {"type": "bool", "default": false},
    "auth_pass": {"type": "str", "no_log": true},
    "track_haproxy": {"type": "bool", "default": true},
    "track_haproxy_stop_delay": {"type": "float"},
    "track_file": {"type": "path"},
    "track_services": {"type": "list", "elements": "str", "default": []},
    "track_interface": {"type": "list", "elements": "str", "default": []},
    "vrrp_script": {
      "type": "list", "elements": "dict", "default": [],
      "options": {
        "name": {"type": "str"},
        "script": {"type": "str", "required": true},
        "interval": {"type": "int", "default": 1},
        "weight": {"type": "int", "default": 0},
        "fall": {"type": "int"},
        "rise": {"type": "int"},
        "timeout": {"type": "int"}
      }
    },
    "notify": {
      "type": "dict",
      "options": {
        "script": {"type": "str"},
        "master": {"type": "str"},
        "backup": {"type": "str"},
        "fault": {"type": "str"},
        "stop": {"type": "str"}
      }
    },
    "global_defs": {"type": "dict"},
    "config_path": {"type": "path", "default": "/etc/keepalived/keepalived.conf"},
    "backup": {"type": "bool", "default": false}
  },
  "required_if": [["state", "present", ["virtual_router_id", "virtual_ipaddress"]]],
  "supports_check_mode": true
}"#;

/// `state`: whether the instance's block is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
}

impl State {
    /// As the option is written.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Present => "present",
            State::Absent => "absent",
        }
    }
}

/// `initial_state`: the state keepalived starts the instance in, as
/// keepalived.conf writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InitialState {
    Master,
    Backup,
}

impl InitialState {
    /// As the option and keepalived.conf write it.
    pub fn as_str(self) -> &'static str {
        match self {
            InitialState::Master => "MASTER",
            InitialState::Backup => "BACKUP",
        }
    }
}

impl std::fmt::Display for InitialState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `vrrp_version`: 2 (whole-second adverts, `auth_pass`) or 3 (sub-second
/// adverts, no authentication).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub enum VrrpVersion {
    V2,
    V3,
}

impl VrrpVersion {
    /// As the option and keepalived.conf write it.
    pub fn number(self) -> u8 {
        match self {
            VrrpVersion::V2 => 2,
            VrrpVersion::V3 => 3,
        }
    }
}

impl TryFrom<i64> for VrrpVersion {
    type Error = String;

    fn try_from(v: i64) -> Result<Self, Self::Error> {
        match v {
            2 => Ok(VrrpVersion::V2),
            3 => Ok(VrrpVersion::V3),
            _ => Err(format!("vrrp_version must be one of: 2, 3, got: {v}")),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Params {
    pub name: String,
    pub state: State,
    pub virtual_router_id: Option<i64>,
    pub priority: i64,
    pub initial_state: InitialState,
    pub nopreempt: bool,
    pub preempt_delay: Option<i64>,
    pub interface: Option<String>,
    #[serde(default, deserialize_with = "list_or_empty")]
    pub virtual_ipaddress: Vec<String>,
    pub advert_int: Option<f64>,
    pub vrrp_version: VrrpVersion,
    pub unicast_src_ip: Option<String>,
    #[serde(default, deserialize_with = "list_or_empty")]
    pub unicast_peer: Vec<String>,
    #[serde(default)]
    pub keep_unicast_peers: bool,
    pub auth_pass: Option<String>,
    pub track_haproxy: bool,
    pub track_haproxy_stop_delay: Option<f64>,
    pub track_file: Option<String>,
    #[serde(default, deserialize_with = "list_or_empty")]
    pub track_services: Vec<String>,
    #[serde(default, deserialize_with = "list_or_empty")]
    pub track_interface: Vec<String>,
    #[serde(default, deserialize_with = "scripts_or_empty")]
    pub vrrp_script: Vec<Script>,
    pub notify: Option<Notify>,
    /// File-level keys for `global_defs`; `None` keeps the ones in the file.
    pub global_defs: Option<serde_json::Map<String, serde_json::Value>>,
    pub config_path: String,
    #[serde(default)]
    pub backup: bool,
}

fn list_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

fn scripts_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Script>, D::Error> {
    Ok(Option::<Vec<Script>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Deserialize)]
pub struct Script {
    pub name: Option<String>,
    pub script: String,
    pub interval: i64,
    pub weight: i64,
    pub fall: Option<i64>,
    pub rise: Option<i64>,
    pub timeout: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Notify {
    pub script: Option<String>,
    pub master: Option<String>,
    pub backup: Option<String>,
    pub fault: Option<String>,
    pub stop: Option<String>,
}

/// One script of `notify` that is set.
pub struct NotifyEntry<'a> {
    /// The keepalived keyword (`notify_master`, ...).
    pub keyword: &'static str,
    /// The option that set it (`notify.master`, ...), for messages.
    pub option: &'static str,
    pub script: &'a str,
}

impl Notify {
    /// Each script that is set, in keepalived's order.
    pub fn entries(&self) -> Vec<NotifyEntry<'_>> {
        [
            ("notify", "notify.script", &self.script),
            ("notify_master", "notify.master", &self.master),
            ("notify_backup", "notify.backup", &self.backup),
            ("notify_fault", "notify.fault", &self.fault),
            ("notify_stop", "notify.stop", &self.stop),
        ]
        .into_iter()
        .filter_map(|(keyword, option, script)| {
            script
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|script| NotifyEntry {
                    keyword,
                    option,
                    script,
                })
        })
        .collect()
    }
}

/// The default tracked file when HAProxy is tracked and no path is given.
pub const DEFAULT_TRACK_FILE: &str = "/run/keepalived/haproxy.down";

impl Params {
    pub fn present(&self) -> bool {
        self.state == State::Present
    }

    /// The advertisement interval: 0.1 s with VRRP v3, 1 s with v2 (whole seconds).
    pub fn advert_int(&self) -> f64 {
        self.advert_int.unwrap_or(match self.vrrp_version {
            VrrpVersion::V2 => 1.0,
            VrrpVersion::V3 => 0.1,
        })
    }

    /// The file keepalived watches, if any.
    pub fn track_file(&self) -> Option<&str> {
        match (&self.track_file, self.track_haproxy) {
            (Some(f), _) if !f.is_empty() => Some(f),
            (_, true) => Some(DEFAULT_TRACK_FILE),
            _ => None,
        }
    }

    /// Where the files of `track_services` go: beside HAProxy's tracked file
    /// when HAProxy is tracked, else in the directory of its default.
    pub fn services_dir(&self) -> &str {
        let beside = match self.track_file() {
            Some(f) if self.track_haproxy => f,
            _ => DEFAULT_TRACK_FILE,
        };
        crate::track::dir_of(beside)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses() {
        ansible_module::ModuleSpec::try_from_json(SPEC).expect("spec");
    }

    /// The ansible-doc sidecar documents exactly the options of SPEC (what
    /// `--argument-spec` prints), with their types, defaults, choices,
    /// elements, aliases and requirements.
    #[test]
    fn sidecar_matches_the_spec() {
        testbed::sidecar::assert_matches_spec(
            SPEC,
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keepalived_vrrp.yml"),
            1,
        );
    }
}
