//! `lxd_cluster_member`: an Ansible module that evacuates an LXD cluster
//! member (its instances stopped or moved to the others, no new ones placed
//! there) and restores it, through the cluster's API (unix socket or HTTPS
//! with a pinned certificate).

use std::time::Duration;

use ansible_module::{service, Fail, Module, ModuleSpec};
use anyhow::Result;
use lxd_api::{Client, ClusterMember, Endpoint, MemberAction, TlsOptions};
use serde::Deserialize;
use serde_json::json;

const SPEC: &str = r#"{
  "argument_spec": {
    "name": {"type": "str", "required": true},
    "state": {"type": "str", "required": true, "choices": ["evacuated", "online"]},
    "mode": {"type": "str", "choices": ["stop", "migrate", "live-migrate"]},
    "timeout": {"type": "int", "default": 600},
    "url": {"type": "str"},
    "client_cert": {"type": "path", "aliases": ["cert_file"]},
    "client_key": {"type": "path", "aliases": ["key_file"], "no_log": false},
    "server_cert": {"type": "path"},
    "server_cert_fingerprint": {"type": "str"}
  },
  "supports_check_mode": true
}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Evacuated,
    Online,
}

#[derive(Debug, Deserialize)]
struct Params {
    name: String,
    state: State,
    mode: Option<String>,
    timeout: i64,
    url: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    server_cert: Option<String>,
    server_cert_fingerprint: Option<String>,
}

/// What the member's status means for the asked state: `None` when it is
/// there already, else the action that gets it there.
fn action_for(status: &str, want: State) -> Option<MemberAction> {
    let evacuated = status.eq_ignore_ascii_case("evacuated");
    match want {
        State::Evacuated if !evacuated => Some(MemberAction::Evacuate),
        State::Online if evacuated => Some(MemberAction::Restore),
        _ => None,
    }
}

fn member_json(m: &ClusterMember) -> serde_json::Value {
    json!({"name": m.server_name, "url": m.url, "status": m.status,
           "message": m.message, "roles": m.roles})
}

/// The client for the cluster's endpoint, once the server has said that it
/// trusts this client, is a cluster and can evacuate members.
fn connect(p: &Params, timeout: Duration) -> Result<(Client, Endpoint)> {
    let tls = TlsOptions::from_options(
        p.client_cert.as_deref(),
        p.client_key.as_deref(),
        p.server_cert.as_deref(),
        p.server_cert_fingerprint.as_deref(),
    );
    let endpoint = match p.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => Endpoint::parse(u)?,
        None => Endpoint::Unix(lxd_api::detect_socket()?),
    };
    let mut lxd = Client::for_endpoint(endpoint.clone(), &tls)?;
    lxd.set_operation_timeout(timeout);
    // GET /1.0 also tells the client whether LXD or Incus answers.
    let trusted = lxd.is_trusted()?;
    let backend = lxd.backend();
    if !trusted {
        return Err(Fail::new(format!(
            "{backend} at {endpoint} does not trust this client certificate: add it on the cluster with `{} config trust add`",
            backend.cli()
        ))
        .into());
    }
    if !lxd.is_clustered()? {
        return Err(Fail::new(format!("{backend} at {endpoint} is not a cluster")).into());
    }
    // Evacuation is an API extension, not the core both LXD and Incus share:
    // asked for here so an older server gets a message, not a 404.
    if !lxd.has_extension("clustering_evacuation")? {
        return Err(Fail::new(format!(
            "{backend} at {endpoint} cannot evacuate members (no API extension clustering_evacuation)"
        ))
        .into());
    }
    Ok((lxd, endpoint))
}

fn run(m: &mut Module) -> Result<()> {
    let p: Params = m.parse()?;
    let timeout = service::seconds_option("timeout", p.timeout)?;
    let (lxd, endpoint) = connect(&p, timeout)?;
    let backend = lxd.backend();
    let Some(before) = lxd.cluster_member(&p.name)? else {
        let names: Vec<String> = lxd
            .cluster_members()?
            .into_iter()
            .map(|m| m.server_name)
            .collect();
        return Err(Fail::new(format!(
            "the {backend} cluster at {endpoint} has no member {}; its members: {}",
            p.name,
            names.join(", ")
        ))
        .into());
    };
    m.set("old_status", &before.status);
    let Some(action) = action_for(&before.status, p.state) else {
        m.set("status", &before.status);
        m.set("member", member_json(&before));
        return Ok(());
    };
    m.set_changed(true);
    m.set("action", action.as_str());
    if m.check_mode() {
        m.set("status", &before.status);
        m.set("member", member_json(&before));
        return Ok(());
    }
    let mode = match action {
        MemberAction::Evacuate => p.mode.as_deref(),
        MemberAction::Restore => None,
    };
    let started = std::time::Instant::now();
    // LXD before clustering_evacuation_mode (5.0 LTS) ignores `mode` in the
    // request and applies each instance's `cluster.evacuate` (`auto`: a
    // container with a macvlan NIC is stopped, not moved). The asked mode is
    // set there for the evacuation and the instances' own values put back.
    let mut overridden = Vec::new();
    let mode = match mode.filter(|m| !m.is_empty()) {
        Some(md) if !lxd.has_extension("clustering_evacuation_mode")? => {
            overridden = override_evacuate_mode(&lxd, &p.name, md)?;
            m.set(
                "mode_set_on_instances",
                overridden
                    .iter()
                    .map(|o| format!("{}/{}", o.project, o.name))
                    .collect::<Vec<_>>(),
            );
            None
        }
        other => other,
    };
    let evacuated = lxd.set_member_state(&p.name, action, mode, timeout);
    let put_back = put_back_evacuate_mode(&lxd, &overridden);
    evacuated.map_err(|e| {
        Fail::new(format!(
            "{} of cluster member {}: {e}",
            action.as_str(),
            p.name
        ))
        .with("action", action.as_str())
    })?;
    put_back?;
    m.set(
        "seconds",
        (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    );
    let after = lxd.cluster_member(&p.name)?.unwrap_or(before);
    m.set("status", &after.status);
    m.set("member", member_json(&after));
    Ok(())
}

/// An instance whose `cluster.evacuate` was set for an evacuation, and the
/// value of its own it had (none: the key was not set on it).
struct Overridden {
    name: String,
    project: String,
    own: Option<String>,
}

impl Overridden {
    fn path(&self) -> String {
        lxd_api::with_query(
            &format!("/1.0/instances/{}", lxd_api::encode(&self.name)),
            &[("project", &self.project)],
        )
    }
}

/// Sets `cluster.evacuate` to `mode` on the member's instances whose expanded
/// value differs; returns each with the value it had.
fn override_evacuate_mode(lxd: &Client, member: &str, mode: &str) -> Result<Vec<Overridden>> {
    let list = lxd.get("/1.0/instances?recursion=1&all-projects=true")?;
    let mut out = Vec::new();
    for i in list.as_array().into_iter().flatten() {
        let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
        if i["location"].as_str() != Some(member)
            || i["expanded_config"]["cluster.evacuate"]
                .as_str()
                .unwrap_or("auto")
                == mode
        {
            continue;
        }
        let changed = Overridden {
            name: s(&i["name"]).unwrap_or_default(),
            project: s(&i["project"]).unwrap_or_else(|| "default".into()),
            own: s(&i["config"]["cluster.evacuate"]),
        };
        lxd.patch(
            &changed.path(),
            &json!({"config": {"cluster.evacuate": mode}}),
        )?;
        out.push(changed);
    }
    Ok(out)
}

/// Puts back what [`override_evacuate_mode`] changed (a key the instance did
/// not have is removed: PUT of its config without it).
fn put_back_evacuate_mode(lxd: &Client, changed: &[Overridden]) -> Result<()> {
    for c in changed {
        let path = c.path();
        let mut inst = lxd.get(&path)?;
        match &c.own {
            Some(v) => inst["config"]["cluster.evacuate"] = json!(v),
            None => {
                if let Some(config) = inst["config"].as_object_mut() {
                    config.remove("cluster.evacuate");
                }
            }
        }
        lxd.put(&path, &inst)?;
    }
    Ok(())
}

fn main() {
    ansible_module::run("lxd_cluster_member", ModuleSpec::from_json(SPEC), run)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ansible-doc sidecar documents exactly the options of SPEC.
    #[test]
    fn sidecar_matches_the_spec() {
        testbed::sidecar::assert_matches_spec(
            SPEC,
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lxd_cluster_member.yml"),
            1,
        );
    }

    #[test]
    fn only_a_member_not_in_the_asked_state_is_acted_on() {
        assert_eq!(
            action_for("Online", State::Evacuated),
            Some(MemberAction::Evacuate)
        );
        assert_eq!(action_for("Evacuated", State::Evacuated), None);
        assert_eq!(
            action_for("Evacuated", State::Online),
            Some(MemberAction::Restore)
        );
        assert_eq!(action_for("Online", State::Online), None);
        // An offline member is not evacuated: LXD says why when asked.
        assert_eq!(
            action_for("Offline", State::Evacuated),
            Some(MemberAction::Evacuate)
        );
    }

    #[test]
    fn every_choice_reads_as_a_state() {
        let spec: serde_json::Value = serde_json::from_str(SPEC).expect("spec");
        for c in spec["argument_spec"]["state"]["choices"]
            .as_array()
            .expect("choices")
        {
            serde_json::from_value::<State>(c.clone()).expect("state");
        }
    }
}
