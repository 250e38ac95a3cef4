//! What the instance should look like, and what has to change to get there.
//! Pure functions over JSON, so every rule (volatile keys, merge versus
//! replace, value coercion) is tested without LXD.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use crate::params::{ConfigMode, Params, State};

/// The config key the dynamic inventory reads groups from.
pub const GROUPS_KEY: &str = "user.ansible.groups";

/// Devices by name; `None` asks for the device to be absent.
pub type Devices = Vec<(String, Option<Map<String, Value>>)>;

/// Config and devices the task asks for. A `None` value asks for the key (or
/// device) to be absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    pub config: Vec<(String, Option<String>)>,
    pub devices: Option<Devices>,
    pub profiles: Option<Vec<String>>,
    pub ephemeral: Option<bool>,
    pub description: Option<String>,
    /// Config keys the task does not name are removed (`config_mode`).
    pub replace: bool,
    /// Devices the task does not name are removed (`devices_mode`, else
    /// `config_mode`).
    pub replace_devices: bool,
}

/// What an update would change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    /// The full instance document to `PUT`.
    pub body: Value,
    /// One line per change, for `log_verbose` and error messages.
    pub changes: Vec<String>,
}

/// Keys LXD owns: never compared, never removed by `config_mode: replace`.
pub fn lxd_owned(key: &str) -> bool {
    key.starts_with("volatile.") || key.starts_with("image.")
}

/// Config keys whose values are secrets by what they usually hold: cloud-init
/// data (passwords, keys, tokens) and the instance's environment. Their
/// values are not returned, logged or diffed unless `show_secrets` is set.
pub fn secret_key(key: &str) -> bool {
    key.starts_with("environment.")
        || matches!(
            key,
            "cloud-init.user-data"
                | "cloud-init.vendor-data"
                | "user.user-data"
                | "user.vendor-data"
        )
}

/// A config value as LXD stores it (always a string).
fn scalar(key: &str, v: &Value) -> Result<Option<String>> {
    Ok(match v {
        // LXD stores an empty value as no key at all.
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(_) | Value::Object(_) => {
            if key.starts_with("cloud-init.") || key.starts_with("user.") && key.ends_with("-data")
            {
                Some(cloud_config(v, !key.ends_with("network-config"))?)
            } else if secret_key(key) {
                bail!("config value of {key} must be a string, number or boolean")
            } else {
                bail!("config value of {key} must be a string, number or boolean, got {v}")
            }
        }
    })
}

/// cloud-init data as text: a string is taken as written; a mapping becomes
/// YAML (with the `#cloud-config` header for user and vendor data).
pub fn cloud_config(v: &Value, header: bool) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => {
            let yaml = serde_yaml_ng::to_string(other).context("cannot render cloud-init data")?;
            Ok(if header {
                format!("#cloud-config\n{yaml}")
            } else {
                yaml
            })
        }
    }
}

fn set(config: &mut Vec<(String, Option<String>)>, key: &str, value: Option<String>) {
    if let Some(slot) = config.iter_mut().find(|(k, _)| k == key) {
        slot.1 = value;
    } else {
        config.push((key.to_string(), value));
    }
}

/// The desired state from the task's options.
pub fn desired(p: &Params) -> Result<Desired> {
    let mut config = vec![];
    for (k, v) in p.config.iter().flatten() {
        config.push((k.clone(), scalar(k, v)?));
    }
    if let Some(ci) = &p.cloud_init {
        for (key, value, header) in [
            ("cloud-init.user-data", &ci.user_data, true),
            ("cloud-init.network-config", &ci.network_config, false),
            ("cloud-init.vendor-data", &ci.vendor_data, true),
        ] {
            match value {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.trim().is_empty() => {}
                Some(v) => set(&mut config, key, Some(cloud_config(v, header)?)),
            }
        }
    }
    if let Some(groups) = &p.groups {
        let joined: Vec<&str> = groups
            .iter()
            .map(|g| g.trim())
            .filter(|g| !g.is_empty())
            .collect();
        let value = (!joined.is_empty()).then(|| joined.join(","));
        set(&mut config, GROUPS_KEY, value);
    }
    let devices = match &p.devices {
        None => None,
        Some(devs) => {
            let mut out = vec![];
            for (name, dev) in devs {
                let dev = match dev {
                    Value::Null => None,
                    Value::Object(m) => {
                        let mut norm = Map::new();
                        for (k, v) in m {
                            match scalar(k, v)? {
                                Some(s) => {
                                    norm.insert(k.clone(), Value::String(s));
                                }
                                None => bail!("device {name}: {k} has no value"),
                            }
                        }
                        if !norm.contains_key("type") {
                            bail!("device {name} needs a type (disk, nic, proxy, ...)");
                        }
                        Some(norm)
                    }
                    other => bail!("device {name} must be a mapping of its settings, got {other}"),
                };
                out.push((name.clone(), dev));
            }
            Some(out)
        }
    };
    Ok(Desired {
        config,
        devices,
        profiles: p.profiles.clone(),
        ephemeral: p.ephemeral,
        description: p.description.clone(),
        replace: p.config_mode == ConfigMode::Replace,
        replace_devices: p.devices_mode.unwrap_or(p.config_mode) == ConfigMode::Replace,
    })
}

/// The source document for creation: a bare string is a local image alias.
pub fn source(v: Option<&Value>) -> Result<Option<Value>> {
    Ok(match v {
        None | Some(Value::Null) => None,
        Some(Value::String(alias)) => Some(json!({"type": "image", "alias": alias})),
        Some(Value::Object(m)) => {
            let mut m = m.clone();
            m.entry("type").or_insert_with(|| json!("image"));
            if m.contains_key("server") {
                m.entry("mode").or_insert_with(|| json!("pull"));
            }
            Some(Value::Object(m))
        }
        Some(other) => bail!("source must be an image alias or a mapping, got {other}"),
    })
}

/// The body of `POST /1.0/instances`.
pub fn create_body(p: &Params, d: &Desired, source: &Value) -> Value {
    let config: Map<String, Value> = d
        .config
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), Value::String(v.clone()))))
        .collect();
    let devices: Map<String, Value> = d
        .devices
        .iter()
        .flatten()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), Value::Object(v.clone()))))
        .collect();
    let mut body = json!({
        "name": p.name,
        "type": p.kind,
        "source": source,
        "config": config,
        "devices": devices,
    });
    if let Some(profiles) = &d.profiles {
        body["profiles"] = json!(profiles);
    }
    if let Some(e) = d.ephemeral {
        body["ephemeral"] = json!(e);
    }
    if let Some(a) = &p.architecture {
        body["architecture"] = json!(a);
    }
    if let Some(desc) = &d.description {
        body["description"] = json!(desc);
    }
    body
}

fn str_map(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn show(key: &str, v: Option<&Value>) -> String {
    match v {
        Some(_) if secret_key(key) => "(hidden)".into(),
        None => "(unset)".into(),
        Some(Value::String(s)) if s.contains('\n') => format!("({} lines)", s.lines().count()),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    }
}

/// Compares the instance with what is asked for; `None` when nothing differs.
pub fn update(current: &Value, d: &Desired) -> Option<Update> {
    let mut changes = vec![];
    let config = merge_config(current, d, &mut changes);
    let devices = merge_devices(current, d, &mut changes);
    let profiles = merge_profiles(current, d, &mut changes);
    let ephemeral = merge_ephemeral(current, d, &mut changes);
    let description = merge_description(current, d, &mut changes);
    if changes.is_empty() {
        return None;
    }
    let mut body = json!({
        "config": config,
        "devices": devices,
        "profiles": profiles,
        "ephemeral": ephemeral,
        "description": description,
    });
    for keep in ["architecture", "stateful"] {
        if let Some(v) = current.get(keep) {
            body[keep] = v.clone();
        }
    }
    Some(Update { body, changes })
}

/// Config: LXD-owned keys are kept and never compared; `replace` drops the
/// user's keys the task does not name.
fn merge_config(current: &Value, d: &Desired, changes: &mut Vec<String>) -> Map<String, Value> {
    let old_config = str_map(current.get("config"));
    let mut config: Map<String, Value> = if d.replace {
        old_config
            .iter()
            .filter(|(k, _)| lxd_owned(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    } else {
        old_config.clone()
    };
    for (k, v) in &d.config {
        if lxd_owned(k) {
            continue;
        }
        match v {
            Some(v) => {
                let new = Value::String(v.clone());
                if old_config.get(k) != Some(&new) {
                    changes.push(format!(
                        "config {k}: {} -> {}",
                        show(k, old_config.get(k)),
                        show(k, Some(&new))
                    ));
                }
                config.insert(k.clone(), new);
            }
            None => {
                if config.remove(k).is_some() {
                    changes.push(format!("config {k}: removed"));
                }
            }
        }
    }
    if d.replace {
        for k in old_config.keys() {
            if !lxd_owned(k) && !config.contains_key(k) {
                changes.push(format!("config {k}: removed"));
            }
        }
    }
    config
}

/// Devices: the instance's own (not those from profiles). With
/// `replace_devices` the ones given are the whole set, as
/// community.general.lxd_container has it.
fn merge_devices(current: &Value, d: &Desired, changes: &mut Vec<String>) -> Map<String, Value> {
    let old_devices = str_map(current.get("devices"));
    let Some(want) = &d.devices else {
        return old_devices;
    };
    let mut devices = if d.replace_devices {
        Map::new()
    } else {
        old_devices.clone()
    };
    for (name, dev) in want {
        match dev {
            Some(dev) => {
                let new = Value::Object(dev.clone());
                if old_devices.get(name) != Some(&new) {
                    let what = if old_devices.contains_key(name) {
                        "changed"
                    } else {
                        "added"
                    };
                    changes.push(format!("device {name}: {what}"));
                }
                devices.insert(name.clone(), new);
            }
            None => {
                devices.remove(name);
            }
        }
    }
    for name in old_devices.keys() {
        if !devices.contains_key(name) {
            changes.push(format!("device {name}: removed"));
        }
    }
    devices
}

fn merge_profiles(current: &Value, d: &Desired, changes: &mut Vec<String>) -> Value {
    let old_profiles = current
        .get("profiles")
        .cloned()
        .unwrap_or_else(|| json!([]));
    match &d.profiles {
        Some(p) if json!(p) != old_profiles => {
            changes.push(format!("profiles: {old_profiles} -> {}", json!(p)));
            json!(p)
        }
        _ => old_profiles,
    }
}

fn merge_ephemeral(current: &Value, d: &Desired, changes: &mut Vec<String>) -> bool {
    let old_ephemeral = current
        .get("ephemeral")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match d.ephemeral {
        Some(e) if e != old_ephemeral => {
            changes.push(format!("ephemeral: {old_ephemeral} -> {e}"));
            e
        }
        _ => old_ephemeral,
    }
}

fn merge_description(current: &Value, d: &Desired, changes: &mut Vec<String>) -> String {
    let old_description = current
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    match &d.description {
        Some(s) if s != old_description => {
            changes.push(format!("description: {old_description:?} -> {s:?}"));
            s.clone()
        }
        _ => old_description.to_string(),
    }
}

/// The part of an instance a user manages, for diffs and the result:
/// no volatile or image keys, keys sorted, secret values masked unless
/// `reveal`.
pub fn view(instance: &Value, state: State, reveal: bool) -> Value {
    let config: std::collections::BTreeMap<String, Value> = str_map(instance.get("config"))
        .into_iter()
        .filter(|(k, _)| !lxd_owned(k))
        .map(|(k, v)| {
            if secret_key(&k) && !reveal {
                (k, json!(ansible_module::NO_LOG_PLACEHOLDER))
            } else {
                (k, v)
            }
        })
        .collect();
    let devices: std::collections::BTreeMap<String, Value> =
        str_map(instance.get("devices")).into_iter().collect();
    json!({
        "state": state,
        "profiles": instance.get("profiles").cloned().unwrap_or_else(|| json!([])),
        "ephemeral": instance.get("ephemeral").cloned().unwrap_or(json!(false)),
        "config": config,
        "devices": devices,
    })
}

/// YAML text of a view, for Ansible's diff output.
pub fn yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap_or_else(|_| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(extra: Value) -> Params {
        let mut base = json!({
            "name": "c1", "state": "started", "type": "container", "config_mode": "merge",
            "wait_for_cloud_init": false, "wait_for_ipv4_addresses": false,
            "timeout": 30, "force_stop": false, "show_secrets": false,
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            base[k] = v;
        }
        serde_json::from_value(base).expect("params")
    }

    fn current() -> Value {
        json!({
            "config": {"image.os": "debian", "volatile.eth0.hwaddr": "00:16:3e:00:00:01",
                       "limits.cpu": "1", "user.note": "x"},
            "devices": {},
            "profiles": ["vrrp-lxd"],
            "ephemeral": false,
            "description": "",
            "architecture": "x86_64",
            "stateful": false,
        })
    }

    #[test]
    fn same_config_is_no_change_and_values_are_coerced() {
        let d = desired(&params(
            json!({"config": {"limits.cpu": 1}, "profiles": ["vrrp-lxd"]}),
        ))
        .expect("desired");
        assert_eq!(update(&current(), &d), None);
    }

    #[test]
    fn volatile_keys_never_count() {
        let d = desired(&params(
            json!({"config": {"volatile.eth0.hwaddr": "aa:bb:cc:dd:ee:ff"}}),
        ))
        .expect("desired");
        assert_eq!(update(&current(), &d), None);
    }

    #[test]
    fn merge_keeps_other_keys_replace_removes_them() {
        let d = desired(&params(json!({"config": {"limits.cpu": "2"}}))).expect("desired");
        let u = update(&current(), &d).expect("change");
        assert_eq!(u.changes, vec!["config limits.cpu: \"1\" -> \"2\""]);
        assert_eq!(u.body["config"]["user.note"], json!("x"));

        let d = desired(&params(
            json!({"config": {"limits.cpu": "1"}, "config_mode": "replace"}),
        ))
        .expect("desired");
        let u = update(&current(), &d).expect("change");
        assert_eq!(u.changes, vec!["config user.note: removed"]);
        assert_eq!(u.body["config"]["image.os"], json!("debian"));
        assert_eq!(
            u.body["config"]["volatile.eth0.hwaddr"],
            json!("00:16:3e:00:00:01")
        );
        assert!(u.body["config"].get("user.note").is_none());
    }

    #[test]
    fn null_removes_a_key_in_merge_mode() {
        let d = desired(&params(json!({"config": {"user.note": null}}))).expect("desired");
        let u = update(&current(), &d).expect("change");
        assert_eq!(u.changes, vec!["config user.note: removed"]);
    }

    #[test]
    fn groups_and_cloud_init_become_config_keys() {
        let d = desired(&params(json!({
            "groups": ["lb", " web "],
            "cloud_init": {"user_data": {"runcmd": [["touch", "/x"]]}, "network_config": "version: 2\n"},
        })))
        .expect("desired");
        let get = |k: &str| {
            d.config
                .iter()
                .find(|(x, _)| x == k)
                .and_then(|(_, v)| v.clone())
        };
        assert_eq!(get(GROUPS_KEY).as_deref(), Some("lb,web"));
        assert_eq!(
            get("cloud-init.user-data").as_deref(),
            Some("#cloud-config\nruncmd:\n- - touch\n  - /x\n")
        );
        assert_eq!(
            get("cloud-init.network-config").as_deref(),
            Some("version: 2\n")
        );
    }

    #[test]
    fn devices_compare_as_strings_and_need_a_type() {
        let mut cur = current();
        cur["devices"] = json!({"web": {"type": "proxy", "listen": "tcp:0.0.0.0:80", "connect": "tcp:127.0.0.1:80"}});
        let d = desired(&params(json!({"devices": {"web": {"type": "proxy", "listen": "tcp:0.0.0.0:80", "connect": "tcp:127.0.0.1:80"}}})))
            .expect("desired");
        assert_eq!(update(&cur, &d), None);
        let d = desired(&params(json!({"devices": {"x": {"path": "/x"}}})));
        assert!(d.is_err());
    }

    /// `devices_mode: replace` makes the devices given the whole set (as
    /// community.general.lxd_container does) while config keys still merge;
    /// without it devices follow `config_mode`.
    #[test]
    fn devices_replace_or_merge() {
        let mut cur = current();
        cur["devices"] = json!({
            "web": {"type": "proxy", "listen": "tcp:0.0.0.0:80", "connect": "tcp:127.0.0.1:80"},
            "data": {"type": "disk", "source": "/srv/data", "path": "/data"},
        });
        let web = json!({"web": {"type": "proxy", "listen": "tcp:0.0.0.0:80", "connect": "tcp:127.0.0.1:80"}});

        // Merge (the default): the device not given stays.
        let d = desired(&params(json!({"devices": web}))).expect("desired");
        assert!(!d.replace_devices);
        assert_eq!(update(&cur, &d), None);

        // Replace: it goes; config keys not given stay.
        let d = desired(&params(
            json!({"devices": web, "devices_mode": "replace", "config": {"limits.cpu": "2"}}),
        ))
        .expect("desired");
        let u = update(&cur, &d).expect("change");
        assert_eq!(
            u.changes,
            vec!["config limits.cpu: \"1\" -> \"2\"", "device data: removed"]
        );
        assert_eq!(u.body["devices"], web);
        assert_eq!(u.body["config"]["user.note"], json!("x"));

        // config_mode replace, devices_mode merge: keys go, devices stay.
        let d = desired(&params(json!({"devices": web, "config_mode": "replace", "devices_mode": "merge", "config": {"limits.cpu": "1"}})))
            .expect("desired");
        let u = update(&cur, &d).expect("change");
        assert_eq!(u.changes, vec!["config user.note: removed"]);
        assert!(u.body["devices"].get("data").is_some());

        // config_mode replace alone replaces devices too, as before.
        let d = desired(&params(json!({"devices": web, "config_mode": "replace", "config": {"limits.cpu": "1", "user.note": "x"}})))
            .expect("desired");
        assert_eq!(
            update(&cur, &d).expect("change").changes,
            vec!["device data: removed"]
        );

        // No devices option: nothing about devices changes, in any mode.
        let d = desired(&params(json!({"devices_mode": "replace"}))).expect("desired");
        assert_eq!(update(&cur, &d), None);
        // An empty set replaces with nothing.
        let d =
            desired(&params(json!({"devices": {}, "devices_mode": "replace"}))).expect("desired");
        assert_eq!(
            update(&cur, &d).expect("change").changes,
            vec!["device web: removed", "device data: removed"]
        );
    }

    #[test]
    fn profile_order_counts() {
        let d = desired(&params(json!({"profiles": ["default", "vrrp-lxd"]}))).expect("desired");
        assert!(update(&current(), &d).is_some());
    }

    #[test]
    fn source_shorthand() {
        assert_eq!(
            source(Some(&json!("vrrp-lxd/bookworm"))).expect("source"),
            Some(json!({"type": "image", "alias": "vrrp-lxd/bookworm"}))
        );
        assert_eq!(
            source(Some(&json!({"server": "https://images", "alias": "debian/12", "protocol": "simplestreams"})))
                .expect("source"),
            Some(json!({"server": "https://images", "alias": "debian/12", "protocol": "simplestreams", "type": "image", "mode": "pull"}))
        );
    }

    #[test]
    fn secret_values_are_masked_unless_asked_for() {
        let mut inst = current();
        inst["config"]["cloud-init.user-data"] = json!("#cloud-config\npassword: hunter2\n");
        inst["config"]["environment.TOKEN"] = json!("t0k3n");
        let masked = view(&inst, State::Started, false);
        assert_eq!(
            masked["config"]["cloud-init.user-data"],
            json!(ansible_module::NO_LOG_PLACEHOLDER)
        );
        assert_eq!(
            masked["config"]["environment.TOKEN"],
            json!(ansible_module::NO_LOG_PLACEHOLDER)
        );
        assert_eq!(masked["config"]["user.note"], json!("x"));
        assert!(!yaml(&masked).contains("hunter2") && !yaml(&masked).contains("t0k3n"));
        let shown = view(&inst, State::Started, true);
        assert_eq!(shown["config"]["environment.TOKEN"], json!("t0k3n"));

        let d = desired(&params(
            json!({"config": {"environment.TOKEN": "new-t0k3n"}}),
        ))
        .expect("desired");
        let u = update(&inst, &d).expect("a change");
        assert_eq!(
            u.changes,
            vec!["config environment.TOKEN: (hidden) -> (hidden)".to_string()]
        );
    }
}
