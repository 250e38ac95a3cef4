//! The module's options: the argument spec Ansible validates against, and the
//! typed view of the validated values.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Same names and defaults as `community.general.lxd_container`, plus ours
/// (`instances`, `config_mode`, `devices_mode`, `cloud_init`, `wait_for_cloud_init`, `groups`,
/// `wait_for_ipv4_interfaces`, `server_cert`, `server_cert_fingerprint`,
/// `description`, `show_secrets`).
pub const SPEC: &str = r#"{
  "argument_spec": {
    "name": {"type": "str"},
    "instances": {"type": "list", "elements": "dict", "options": {
        "name": {"type": "str", "required": true},
        "description": {"type": "str"},
        "config": {"type": "dict"},
        "devices": {"type": "dict"},
        "profiles": {"type": "list", "elements": "str"},
        "groups": {"type": "list", "elements": "str"},
        "target": {"type": "str"},
        "project": {"type": "str"},
        "url": {"type": "str"},
        "client_cert": {"type": "path"},
        "client_key": {"type": "path", "no_log": false},
        "server_cert": {"type": "path"},
        "server_cert_fingerprint": {"type": "str"}
    }},
    "state": {"type": "str", "default": "started",
              "choices": ["started", "stopped", "restarted", "absent", "frozen"]},
    "source": {"type": "raw"},
    "type": {"type": "str", "default": "container", "choices": ["container", "virtual-machine"]},
    "architecture": {"type": "str"},
    "description": {"type": "str"},
    "config": {"type": "dict"},
    "config_mode": {"type": "str", "default": "merge", "choices": ["merge", "replace"]},
    "ignore_volatile_options": {"type": "bool", "default": false},
    "devices": {"type": "dict"},
    "devices_mode": {"type": "str", "choices": ["merge", "replace"]},
    "profiles": {"type": "list", "elements": "str"},
    "ephemeral": {"type": "bool"},
    "cloud_init": {"type": "dict", "options": {
        "user_data": {"type": "raw"},
        "network_config": {"type": "raw"},
        "vendor_data": {"type": "raw"}
    }},
    "wait_for_cloud_init": {"type": "bool", "default": false},
    "groups": {"type": "list", "elements": "str"},
    "wait_for_ipv4_addresses": {"type": "bool", "default": false},
    "wait_for_ipv4_interfaces": {"type": "list", "elements": "str"},
    "wait_for_container": {"type": "bool", "default": false},
    "timeout": {"type": "int", "default": 30},
    "force_stop": {"type": "bool", "default": false},
    "target": {"type": "str"},
    "project": {"type": "str"},
    "url": {"type": "str"},
    "snap_url": {"type": "str", "default": "unix:/var/snap/lxd/common/lxd/unix.socket"},
    "client_cert": {"type": "path", "aliases": ["cert_file"]},
    "client_key": {"type": "path", "aliases": ["key_file"], "no_log": false},
    "server_cert": {"type": "path"},
    "server_cert_fingerprint": {"type": "str"},
    "trust_password": {"type": "str", "no_log": true, "aliases": ["trust_token"]},
    "show_secrets": {"type": "bool", "default": false}
  },
  "required_one_of": [["name", "instances"]],
  "mutually_exclusive": [["name", "instances"]],
  "supports_check_mode": true
}"#;

/// `state`, and the state an instance is found in (`old_state`: `started`,
/// `stopped`, `frozen` or `absent`), written as the option writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Started,
    Stopped,
    Restarted,
    Absent,
    Frozen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Started => "started",
            State::Stopped => "stopped",
            State::Restarted => "restarted",
            State::Absent => "absent",
            State::Frozen => "frozen",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `type`: what LXD makes, as LXD writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Container,
    VirtualMachine,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::VirtualMachine => "virtual-machine",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `config_mode` (and `devices_mode`): whether keys (devices) the task does
/// not name are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigMode {
    /// Keys not named are kept.
    Merge,
    /// Keys not named are removed (LXD's own `volatile.*`/`image.*` stay).
    Replace,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CloudInit {
    pub user_data: Option<Value>,
    pub network_config: Option<Value>,
    pub vendor_data: Option<Value>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// One entry of `instances`: what differs from the task's other options.
#[derive(Debug, Clone, Deserialize)]
pub struct InstanceItem {
    pub name: String,
    pub description: Option<String>,
    pub config: Option<Map<String, Value>>,
    pub devices: Option<Map<String, Value>>,
    pub profiles: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub target: Option<String>,
    pub project: Option<String>,
    pub url: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub server_cert: Option<String>,
    pub server_cert_fingerprint: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Params {
    /// Empty with `instances`.
    #[serde(deserialize_with = "null_as_empty")]
    pub name: String,
    pub instances: Option<Vec<InstanceItem>>,
    pub state: State,
    pub source: Option<Value>,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub architecture: Option<String>,
    pub description: Option<String>,
    pub config: Option<Map<String, Value>>,
    pub config_mode: ConfigMode,
    pub devices: Option<Map<String, Value>>,
    /// `None`: as `config_mode`.
    pub devices_mode: Option<ConfigMode>,
    pub profiles: Option<Vec<String>>,
    pub ephemeral: Option<bool>,
    pub cloud_init: Option<CloudInit>,
    pub wait_for_cloud_init: bool,
    pub groups: Option<Vec<String>>,
    pub wait_for_ipv4_addresses: bool,
    pub wait_for_ipv4_interfaces: Option<Vec<String>>,
    pub timeout: i64,
    pub force_stop: bool,
    pub target: Option<String>,
    pub project: Option<String>,
    pub url: Option<String>,
    pub snap_url: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub server_cert: Option<String>,
    pub server_cert_fingerprint: Option<String>,
    pub trust_password: Option<String>,
    pub show_secrets: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices(name: &str) -> Vec<Value> {
        let spec: Value = serde_json::from_str(SPEC).expect("spec");
        spec["argument_spec"][name]["choices"]
            .as_array()
            .cloned()
            .expect("choices")
    }

    /// The ansible-doc sidecar documents exactly the options of SPEC.
    #[test]
    fn sidecar_matches_the_spec() {
        testbed::sidecar::assert_matches_spec(
            SPEC,
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lxd_instance.yml"),
            5,
        );
    }

    /// Every choice of the spec reads as a variant that writes it back (in
    /// results, LXD requests and messages) the same.
    #[test]
    fn every_choice_is_a_variant_written_as_given() {
        for c in choices("state") {
            let v: State = serde_json::from_value(c.clone()).expect("state");
            assert_eq!(serde_json::to_value(v).ok(), Some(c.clone()));
            assert_eq!(Some(v.to_string().as_str()), c.as_str());
        }
        for c in choices("type") {
            let v: Kind = serde_json::from_value(c.clone()).expect("type");
            assert_eq!(serde_json::to_value(v).ok(), Some(c.clone()));
            assert_eq!(Some(v.to_string().as_str()), c.as_str());
        }
        for option in ["config_mode", "devices_mode"] {
            let modes: Vec<ConfigMode> = choices(option)
                .into_iter()
                .map(|c| serde_json::from_value(c).expect(option))
                .collect();
            assert_eq!(modes, [ConfigMode::Merge, ConfigMode::Replace], "{option}");
        }
    }
}
