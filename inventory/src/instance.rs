//! The parts of LXD's instance list the inventory reads: `GET /1.0/instances`
//! with `recursion=1` (no `state`) or `recursion=2` (with it).
//!
//! Every field is optional on the wire (older servers, stopped instances with
//! `"network": null`), so missing and `null` both read as empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// One element of the `metadata` list of `GET /1.0/instances?recursion=1` or
/// `recursion=2`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Instance {
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub status: String,
    #[serde(default, rename = "type", deserialize_with = "null_default")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default")]
    pub architecture: String,
    #[serde(default, deserialize_with = "null_default")]
    pub location: String,
    #[serde(default, deserialize_with = "null_default")]
    pub project: String,
    #[serde(default, deserialize_with = "null_default")]
    pub description: String,
    #[serde(default, deserialize_with = "null_default")]
    pub profiles: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub config: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    pub expanded_config: BTreeMap<String, String>,
    /// Devices, profiles' included: `{"eth0": {"type": "nic", "network": ...}}`.
    #[serde(default, deserialize_with = "null_default")]
    pub expanded_devices: BTreeMap<String, BTreeMap<String, String>>,
    /// Present with `recursion=2`; with `recursion=1` the inventory fills it
    /// from the leases or from `GET /1.0/instances/<name>/state`.
    #[serde(default)]
    pub state: Option<InstanceState>,
}

/// `state` of an instance (`recursion=2`, or `GET /1.0/instances/<name>/state`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InstanceState {
    #[serde(default, deserialize_with = "null_default")]
    pub status: String,
    #[serde(default, deserialize_with = "null_default")]
    pub network: BTreeMap<String, Nic>,
}

/// One network interface inside the instance, as LXD reports it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Nic {
    #[serde(default, deserialize_with = "null_default")]
    pub addresses: Vec<Address>,
    #[serde(default, deserialize_with = "null_default")]
    pub hwaddr: String,
    #[serde(default, deserialize_with = "null_default")]
    pub host_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub state: String,
    #[serde(default, rename = "type", deserialize_with = "null_default")]
    pub kind: String,
}

/// One address of a [`Nic`].
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Address {
    #[serde(default, deserialize_with = "null_default")]
    pub family: String,
    #[serde(default, deserialize_with = "null_default")]
    pub address: String,
    #[serde(default, deserialize_with = "null_default")]
    pub netmask: String,
    #[serde(default, deserialize_with = "null_default")]
    pub scope: String,
}

impl Instance {
    /// The user-facing status (`Running`, `Stopped`, `Frozen`, ...): the live
    /// state's when present, else the top-level one.
    pub fn status(&self) -> &str {
        match &self.state {
            Some(s) if !s.status.is_empty() => &s.status,
            _ => &self.status,
        }
    }

    /// The project LXD listed the instance in, else `asked` (older servers
    /// leave it out).
    pub fn project_or<'a>(&'a self, asked: &'a str) -> &'a str {
        if self.project.is_empty() {
            asked
        } else {
            &self.project
        }
    }

    pub fn is_running(&self) -> bool {
        self.status().eq_ignore_ascii_case("running")
    }

    /// Interfaces as reported by the running instance (empty when stopped).
    pub fn network(&self) -> &BTreeMap<String, Nic> {
        static EMPTY: BTreeMap<String, Nic> = BTreeMap::new();
        self.state.as_ref().map_or(&EMPTY, |s| &s.network)
    }

    /// A config value, from the expanded config (profiles included) first.
    pub fn config_value(&self, key: &str) -> Option<&str> {
        self.expanded_config
            .get(key)
            .or_else(|| self.config.get(key))
            .map(String::as_str)
    }

    /// Every `user.*` key of the expanded config (profiles included), the
    /// instance's own values winning.
    pub fn user_config(&self) -> BTreeMap<&str, &str> {
        self.expanded_config
            .iter()
            .chain(self.config.iter())
            .filter(|(k, _)| k.starts_with("user.") && !SECRET_USER_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// cloud-init's legacy keys: they hold passwords and keys, and host vars are
/// shown to anyone who can read an inventory (an AWX inventory sync).
const SECRET_USER_KEYS: &[&str] = &["user.user-data", "user.vendor-data"];

/// Parse the whole API answer (`{"type": "sync", "metadata": [...]}`) or the bare
/// `metadata` list.
pub fn parse_answer(json: &str) -> Result<Vec<Instance>, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Answer {
        Envelope { metadata: Vec<Instance> },
        List(Vec<Instance>),
    }
    Ok(match serde_json::from_str::<Answer>(json)? {
        Answer::Envelope { metadata } | Answer::List(metadata) => metadata,
    })
}

/// Missing and `null` both read as the type's empty value.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
